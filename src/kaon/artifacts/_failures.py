"""What a failure of an artifact store's filesystem means: an outage, or a refusal.

An outage (a dropped connection, a store that does not answer, a throttled or failed request)
passes: it is an :class:`~kaon.errors.ArtifactUnavailableError`, tried again. A refusal lasts
until someone changes the store's configuration: no credentials, credentials the store does
not know or that may not do this, a bucket that does not exist. It is an
:class:`~kaon.errors.ArtifactAccessError`, whose message names the store and what to fix;
trying it again changes nothing, so nothing tries it again.

The drivers' errors are recognised by what they are (botocore's credential errors, an S3
error code on the ``ClientError`` s3fs keeps as the cause), never by their text alone.
"""

from __future__ import annotations

from collections.abc import Iterator

from kaon.errors import ArtifactAccessError, ArtifactError, ArtifactUnavailableError

_CREDENTIALS_HINT = (
    "give Kaon S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an "
    "instance role; sandboxed steps get them with "
    "KAON_SANDBOX_ENV=AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY)"
)
_URL_HINT = "fix the artifact store URL (--artifacts, KAON_ARTIFACTS)"

# S3 error codes that no retry changes, and what to fix for each.
_REFUSING_CODES = {
    "NoSuchBucket": f"the bucket does not exist: create it or {_URL_HINT}",
    "InvalidBucketName": f"the bucket name is not valid: {_URL_HINT}",
    "PermanentRedirect": f"the bucket is in another region or endpoint: {_URL_HINT} or "
    "its endpoint (KAON_S3_ENDPOINT_URL)",
    "InvalidAccessKeyId": f"the store does not know the access key: {_CREDENTIALS_HINT}",
    "SignatureDoesNotMatch": f"the secret key does not match the access key: {_CREDENTIALS_HINT}",
    "ExpiredToken": f"the credentials' session token has expired: {_CREDENTIALS_HINT}",
    "InvalidToken": f"the credentials' session token is not valid: {_CREDENTIALS_HINT}",
    "AccessDenied": "the credentials may not read and write the store's objects: grant them "
    "s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on it",
    # A HEAD request's refusal has no body, so no code: the HTTP status alone.
    "403": f"the store refuses the credentials or what they may do: {_CREDENTIALS_HINT}, "
    "with s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on the store",
    "AllAccessDisabled": "all access to the bucket is disabled",
    "AccountProblem": "the store's account cannot be used",
    "NotSignedUp": "the account is not signed up for S3",
}
_CREDENTIAL_ERRORS = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "ProfileNotFound",
    }
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the errors it was raised from or during, nearest first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _botocore_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("botocore.", "aiobotocore."))


def refusal(exc: BaseException) -> str | None:
    """What to fix when ``exc`` is a refusal of the store (see the module docs), else None."""
    for error in _chain(exc):
        if _botocore_error(error) and any(
            cls.__name__ in _CREDENTIAL_ERRORS for cls in type(error).__mro__
        ):
            return _CREDENTIALS_HINT
        response = getattr(error, "response", None)
        if _botocore_error(error) and isinstance(response, dict):
            code = str((response.get("Error") or {}).get("Code") or "")
            if code in _REFUSING_CODES:
                return _REFUSING_CODES[code]
    return None


def timed_out(exc: BaseException) -> bool:
    """True when ``exc`` is (or came of) a request the store did not answer in time."""
    return any(
        isinstance(error, TimeoutError) or "Timeout" in type(error).__name__
        for error in _chain(exc)
    )


def store_failure(url: str, doing: str, exc: BaseException) -> ArtifactError:
    """The store's error for ``exc``, met while ``doing`` (``cannot write blob ... to ...``)
    on the store at ``url``: :class:`~kaon.errors.ArtifactAccessError` naming the store and
    what to fix for a refusal, :class:`~kaon.errors.ArtifactUnavailableError` otherwise (one
    that timed out says the store is not answering)."""
    fix = refusal(exc)
    if fix is not None:
        return ArtifactAccessError(f"{doing}: the artifact store {url} refuses Kaon: {exc}: {fix}")
    if timed_out(exc):
        return ArtifactUnavailableError(
            f"{doing}: the artifact store {url} is not answering (nothing within its time "
            f"limit, KAON_S3_TIMEOUT_S): {exc}"
        )
    return ArtifactUnavailableError(f"{doing}: {exc}")
