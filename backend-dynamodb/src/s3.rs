//! Snapshot blobs in S3 (`bucket=`), on the table's HTTPS client, region and credentials.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use bytes::Bytes;
use sekiban_core::backend::{CostCounter, RetryBudget};
use sekiban_core::{BlobStore, OpKind, Result, StoreError};

use crate::Init;
use crate::error::from_sdk;

/// A [`BlobStore`] in one S3 bucket: a blob is an object keyed by its path.
///
/// ```no_run
/// # async fn run() -> sekiban_core::Result<()> {
/// use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};
/// // Large snapshots go to the bucket the URL names.
/// let url = "dynamodb://events?bucket=my-snapshots";
/// let table = DynamoDbTable::connect(DynamoDbConfig::from_url(url)?).await;
/// table.init().await?;
/// table.init_bucket().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct S3Blobs {
    pub(crate) client: aws_sdk_s3::Client,
    bucket: String,
    /// The store's retry budget: the SDK's policy keeps it for each request; a download whose
    /// body is cut after the answer began (past the SDK's reach) is asked again within it.
    budget: RetryBudget,
    costs: Arc<CostCounter>,
}

impl S3Blobs {
    /// Blobs in `bucket`, through `client` (see `client::s3`), within `budget`, retries counted
    /// into `costs`.
    pub(crate) fn new(
        client: aws_sdk_s3::Client,
        bucket: &str,
        budget: RetryBudget,
        costs: Arc<CostCounter>,
    ) -> Self {
        S3Blobs {
            client,
            bucket: bucket.to_string(),
            budget,
            costs,
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Checks the bucket exists (and the credentials reach it).
    pub async fn check(&self) -> Result<()> {
        let b = &self.bucket;
        match self.client.head_bucket().bucket(b).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                Err(StoreError::NotInitialized {
                    what: format!(
                        "bucket {b} does not exist; create it with DynamoDbTable::init or the templates in infra/"
                    ),
                })
            }
            Err(e) => Err(from_sdk(&format!("look up bucket {b}"), e)),
        }
    }

    /// Creates the bucket when it does not exist (in the client's region). The templates in
    /// `infra/` add what production wants: encryption, public access blocked, no versioning.
    pub async fn init(&self) -> Result<Init> {
        let b = &self.bucket;
        match self.client.head_bucket().bucket(b).send().await {
            Ok(_) => return Ok(Init::Existed),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
            Err(e) => return Err(from_sdk(&format!("look up bucket {b}"), e)),
        }
        let mut create = self.client.create_bucket().bucket(b);
        if let Some(region) = self
            .client
            .config()
            .region()
            .map(|r| r.as_ref().to_string())
            && region != "us-east-1"
        {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        create
            .send()
            .await
            .map_err(|e| from_sdk(&format!("create bucket {b}"), e))?;
        Ok(Init::Created)
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| from_sdk(&format!("put s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let what = || format!("s3://{}/{key}", self.bucket);
        let mut made = 0u32;
        // The SDK retries a request until its answer begins; a body cut after that is a new
        // request here, within the same budget. The SDK's own answer (after its retries) is
        // final: it comes out of the loop as `Ok(Err(_))`.
        self.budget
            .run(&self.costs, OpKind::Blob, || {
                made += 1;
                if made > 1 {
                    // One more request than the offload counted.
                    self.costs.record(OpKind::Blob, 0, 0);
                }
                async {
                    let out = match self
                        .client
                        .get_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .send()
                        .await
                    {
                        Ok(out) => out,
                        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                            return Ok(Ok(None));
                        }
                        Err(e) => return Ok(Err(from_sdk(&format!("get {}", what()), e))),
                    };
                    match out.body.collect().await {
                        Ok(body) => Ok(Ok(Some(body.into_bytes()))),
                        Err(e) => Err(StoreError::unavailable(
                            format!("read the body of {}", what()),
                            e,
                        )),
                    }
                }
            })
            .await?
    }

    async fn delete(&self, key: &str) -> Result<()> {
        // S3 answers a delete of a missing key with success.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| from_sdk(&format!("delete s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| from_sdk(&format!("list s3://{}/{prefix}", self.bucket), e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }
}
