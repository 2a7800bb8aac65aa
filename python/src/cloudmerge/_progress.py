"""The engine's progress (`--progress lines`: one JSON object per line, see
docs/report.md) as tqdm bars, one per phase: in a terminal the text bar, in
Jupyter the notebook widget (tqdm.auto chooses; without ipywidgets Jupyter
gets the text bar too).
Threading: used by the one thread that reads the engine's standard error.
"""
import sys


def in_notebook():
    """True inside a Jupyter (IPython kernel) session."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and type(shell).__name__ == "ZMQInteractiveShell"


def progress_wanted(progress):
    """progress=True/False forces; None: a bar when someone is watching (a terminal, Jupyter)."""
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty() or in_notebook()
    except (AttributeError, ValueError):
        return False


class ProgressBars:
    def __init__(self, enabled):
        self.enabled = enabled
        self.bars = {}   # phase name -> (tqdm bar, which counter it shows: "bytes" or "rows")

    def update(self, line):
        if not self.enabled:
            return
        name = line["progress"]
        if name not in self.bars:
            from tqdm.auto import tqdm

            by_bytes = bool(line.get("total_bytes")) or not line.get("total_rows")
            total = (line.get("total_bytes") if by_bytes else line.get("total_rows")) or None
            bar = tqdm(total=total, desc=name, unit="B" if by_bytes else " rows", unit_scale=True,
                       unit_divisor=1024 if by_bytes else 1000, leave=True, file=sys.stderr)
            self.bars[name] = (bar, "bytes" if by_bytes else "rows")
        bar, counter = self.bars[name]
        done = line.get(counter, 0)
        if line.get("done") and bar.total:
            done = max(done, bar.total)  # totals are estimates (compressed inputs): end at 100%
        bar.update(done - bar.n)
        if line.get("done"):
            bar.close()

    def close(self):
        """Closes the bars still open (a phase cut short by an error gets no done line)."""
        for bar, _ in self.bars.values():
            if not bar.disable:
                bar.close()
