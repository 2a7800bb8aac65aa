"""Where submit() drops a job and looks for its result: a local folder (the
`cloudmerge serve --local DIR` pipeline's DIR/input and DIR/output) or an S3
location s3://bucket/prefix/ (the deployed pipeline's buckets; needs boto3).

Owns: put (atomic: a job input appears whole or not at all), list, get.
Keys are relative, '/'-separated, as the pipeline's JobStore (job_store.h).
Threading: one store per call of submit(); not shared.
"""
import os
import pathlib
import shutil
import tempfile


def open_store(location):
    location = os.fspath(location)
    return S3Store(location) if location.startswith("s3://") else LocalStore(location)


class LocalStore:
    def __init__(self, root):
        self.root = pathlib.Path(root)

    def uri(self, key):
        return str(self.root / key)

    def put_file(self, key, src):
        dst = self.root / key
        dst.parent.mkdir(parents=True, exist_ok=True)
        # A temporary in the same folder (a name the pipeline ignores), renamed
        # into place: the worker never sees half a file.
        fd, tmp = tempfile.mkstemp(prefix="." + dst.name + ".", suffix=".partial", dir=dst.parent)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        except BaseException:
            os.unlink(tmp)
            raise

    def put_bytes(self, key, data):
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(data)
        try:
            self.put_file(key, f.name)
        finally:
            os.unlink(f.name)

    def list(self, prefix):
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)).replace(os.sep, "/") for p in base.rglob("*") if p.is_file())

    def exists(self, key):
        return (self.root / key).is_file()

    def get(self, key):
        return (self.root / key).read_bytes()


class S3Store:
    def __init__(self, uri):
        try:
            import boto3
        except ImportError:
            raise ImportError("submit() to s3:// needs boto3: pip install 'cloudmerge[s3]' (or pip install boto3)") from None
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        # Credentials, region and AWS_ENDPOINT_URL as the AWS CLI and the engine find them.
        self.client = boto3.client("s3")

    def uri(self, key):
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def put_file(self, key, src):
        self.client.upload_file(os.fspath(src), self.bucket, self.prefix + key)  # multipart: whole or nothing

    def put_bytes(self, key, data):
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def list(self, prefix):
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            keys += [o["Key"][len(self.prefix):] for o in page.get("Contents", [])]
        return sorted(keys)

    def exists(self, key):
        return key in self.list(key)

    def get(self, key):
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
