//! SDK errors as the store's: by kind and error code, never by message text.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use sekiban_core::StoreError;

/// Error codes of a request refused for the rate it came at (retried by the SDK first):
/// DynamoDB's, and S3's `SlowDown`.
const THROTTLING: [&str; 4] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Error codes of a failure the service calls transient (retried by the SDK first): DynamoDB's
/// 500 and 503, and S3's 500, 503 and `RequestTimeout` (the connection idle too long).
const TRANSIENT: [&str; 5] = [
    "InternalServerError",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "RequestTimeout",
];

/// An SDK error of `what` (e.g. "create table events") as a [`StoreError`]: a request that never
/// got a whole answer (no connection, a timeout, a connection lost in the middle of the reply)
/// or one the service calls transient (by its code, or a 5xx status without one the SDK could
/// read) is `Unavailable`, throttling past the retries (by code, or a 429) is `Throttled`,
/// anything else a `Backend` error naming what was done and the service's code. The SDK's
/// error stays in the source chain (`std::error::Error::source`).
pub(crate) fn from_sdk<E>(what: &str, e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::unavailable(what, e)
        }
        SdkError::ServiceError(_)
            if e.code().is_some_and(|c| THROTTLING.contains(&c))
                || (e.code().is_none() && status == Some(429)) =>
        {
            StoreError::throttled(what, e)
        }
        SdkError::ServiceError(_)
            if e.code().is_some_and(|c| TRANSIENT.contains(&c))
                || (e.code().is_none() && status.is_some_and(|s| s >= 500)) =>
        {
            StoreError::unavailable(what, e)
        }
        _ => {
            let code = e.code().map(str::to_string);
            let context = match code {
                Some(code) => format!("{what} ({code})"),
                None => what.to_string(),
            };
            // The SDK's error stays the source; the message shows its whole chain.
            StoreError::backend(context, e)
        }
    }
}

/// A request builder's error (a required field missing) as a backend error naming the part.
pub(crate) fn built<T>(
    what: &str,
    r: std::result::Result<T, aws_sdk_dynamodb::error::BuildError>,
) -> sekiban_core::Result<T> {
    r.map_err(|e| StoreError::backend(format!("build the {what}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};

    fn raw() -> Response {
        Response::new(
            StatusCode::try_from(200).unwrap(),
            aws_smithy_types::body::SdkBody::empty(),
        )
    }

    #[test]
    fn a_reply_lost_or_cut_is_unavailable_and_throttling_is_throttled() {
        let cut: SdkError<GetItemError, Response> =
            SdkError::response_error("the connection closed in the middle of the body", raw());
        assert!(matches!(
            from_sdk("get", cut),
            StoreError::Unavailable { .. }
        ));
        let timeout: SdkError<GetItemError, Response> = SdkError::timeout_error("no answer");
        assert!(matches!(
            from_sdk("get", timeout),
            StoreError::Unavailable { .. }
        ));
        for (code, transient) in [
            ("ThrottlingException", true),
            ("InternalServerError", true),
            ("ServiceUnavailable", true),
            ("ValidationException", false),
        ] {
            let e: SdkError<GetItemError, Response> = SdkError::service_error(
                GetItemError::generic(
                    aws_sdk_dynamodb::error::ErrorMetadata::builder()
                        .code(code)
                        .build(),
                ),
                raw(),
            );
            assert_eq!(from_sdk("get", e).is_transient(), transient, "{code}");
        }
    }

    #[test]
    fn an_answer_without_a_code_is_typed_by_its_status() {
        for (status, throttled, transient) in [
            (503, false, true),
            (500, false, true),
            (429, true, true),
            (400, false, false),
            (403, false, false),
        ] {
            let raw = Response::new(
                StatusCode::try_from(status).unwrap(),
                aws_smithy_types::body::SdkBody::empty(),
            );
            let e: SdkError<GetItemError, Response> = SdkError::service_error(
                GetItemError::generic(aws_sdk_dynamodb::error::ErrorMetadata::builder().build()),
                raw,
            );
            let e = from_sdk("get", e);
            assert_eq!(e.is_transient(), transient, "{status}: {e:?}");
            assert_eq!(
                matches!(e, StoreError::Throttled { .. }),
                throttled,
                "{status}: {e:?}"
            );
        }
    }
}
