"""A shared state location in an S3 bucket (or an S3-compatible store: MinIO, Ceph, R2 through AWS_ENDPOINT_URL),
through boto3, which reads the credentials, region and endpoint from its own configuration (AWS_* variables,
profiles, instance roles): mlspec writes none."""

from __future__ import annotations

from typing import Any

from mlspec.backends.local.shared_store import Stored, StoreError

INSTALL = "pip install 'mlspec[s3]'"
_ABSENT = {"NoSuchKey", "404", "NotFound"}
# Another conditional write to the same key in flight (S3 answers 409 to one of two racing writers): it is taken.
_TAKEN = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_NO_CONDITIONAL_DELETE = {"NotImplemented", "501"}
_CONFIGURATION = ("boto3 reads the credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                  "AWS_REGION, AWS_PROFILE and AWS_ENDPOINT_URL (for an S3-compatible store) or ~/.aws/config")


class S3Store:
    """Objects under `prefix` in `bucket`: a PUT replaces an object whole (readers see the old one or the new one),
    and a PUT with If-None-Match: * creates it only when absent (exactly one of racing writers succeeds)."""

    def __init__(self, bucket: str, prefix: str, client: Any = None) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._client = client if client is not None else _new_client()
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors = (BotoCoreError, ClientError)  # a refusal by the store; no credentials or connection

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def at(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def read(self, name: str) -> Stored | None:
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self._key(name))
            data = answer["Body"].read()
        except self._errors as exc:
            if _code(exc) in _ABSENT:
                return None
            raise self._failed("read", name, exc) from None
        return Stored(data, str(answer["ETag"]))

    def write(self, name: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data,
                                    ContentType="application/json")
        except self._errors as exc:
            raise self._failed("write", name, exc) from None

    def create(self, name: str, data: bytes) -> bool:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data, IfNoneMatch="*",
                                    ContentType="application/json")
        except self._errors as exc:
            if _code(exc) in _TAKEN:
                return False
            if _unknown_parameter(exc):
                raise StoreError(f"cannot create {self.at(name)}: this botocore cannot write conditionally "
                                 f"(If-None-Match), which the lock needs: pip install -U 'mlspec[s3]'") from None
            raise self._failed("create", name, exc) from None
        return True

    def delete(self, name: str, tag: str) -> bool:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(name), IfMatch=tag)
        except self._errors as exc:
            code = _code(exc)
            if code in _TAKEN or code in _ABSENT:
                return False  # replaced since it was read (a lock broken and taken again), or gone already
            if code not in _NO_CONDITIONAL_DELETE and not _unknown_parameter(exc):
                raise self._failed("delete", name, exc) from None
            # A store (or a botocore) without conditional deletes: read again, then delete, with the same instant's
            # window as a folder's check-then-unlink.
            current = self.read(name)
            if current is None or current.tag != tag:
                return False
            try:
                self._client.delete_object(Bucket=self.bucket, Key=self._key(name))
            except self._errors as again:
                raise self._failed("delete", name, again) from None
        return True

    def exists(self, name: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        except self._errors as exc:
            if _code(exc) in _ABSENT:
                return False
            raise self._failed("read", name, exc) from None
        return True

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _failed(self, verb: str, name: str, exc: Exception) -> StoreError:
        return StoreError(f"cannot {verb} {self.at(name)}: {exc} ({_CONFIGURATION})")


def _new_client() -> Any:
    try:
        import boto3
    except ImportError:
        raise StoreError(f"an s3:// state location needs boto3, which is not installed: {INSTALL}") from None
    try:
        return boto3.client("s3")
    except Exception as exc:  # no region, a profile that does not exist, a malformed endpoint
        raise StoreError(f"cannot reach S3: {exc} ({_CONFIGURATION})") from None


def _code(exc: Exception) -> str:
    """The S3 error code of a botocore ClientError; '' for any other failure (no credentials, no connection)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _unknown_parameter(exc: Exception) -> bool:
    """Whether botocore refused a parameter it does not know (an older botocore than the store's API)."""
    return type(exc).__name__ == "ParamValidationError"
