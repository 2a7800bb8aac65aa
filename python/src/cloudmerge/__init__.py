"""cloudmerge: analysis.py's merge of two TSV files, exact and fast, from Python.

    import cloudmerge
    df = cloudmerge.merge("x_list.txt", "y_list.txt")          # the script's result as a DataFrame
    report = cloudmerge.merge("x.tsv", "y.tsv", out="s3://lab-out/merged.tsv", memory_limit="4GiB")
    job = cloudmerge.submit("x.tsv", "y.tsv", input="s3://lab-in/", output="s3://lab-out/")

The work is done by the C++ engine inside this package (cloudmerge/_bin/
cloudmerge, the same program as the repository's build/cloudmerge).
"""
from .errors import CloudmergeError, InputError, JobFailed, OptionsError, StorageError
from .merge import merge
from .pipeline import Job, submit

try:
    from importlib.metadata import version as _version

    __version__ = _version("cloudmerge")
except Exception:  # running from a source checkout, not installed
    __version__ = "0+unknown"

__all__ = ["merge", "submit", "Job", "CloudmergeError", "InputError", "OptionsError", "StorageError", "JobFailed",
           "__version__"]
