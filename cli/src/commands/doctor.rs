//! `sekiban doctor`: a deployed table, container or schema checked against what its backend
//! expects.

use sekiban_core::doctor::Diagnosis;

use crate::args::DoctorArgs;
use crate::commands::print;
use crate::exit::{Exit, Reported, bad_input};

/// Diagnoses the deployment `url` names, prints the findings, and fails (exit code 1) when a
/// check failed.
pub async fn run(url: &str, args: DoctorArgs) -> anyhow::Result<()> {
    let (what, d) = diagnose(url).await?;
    if args.json {
        print(&format!(
            "{}\n",
            serde_json::json!({ "store": what, "failed": d.failed(), "findings": d.findings })
        ))?;
    } else {
        print(&format!("doctor: {what}\n{d}\n"))?;
    }
    if d.failed() {
        return Err(Reported(Exit::Failure).into());
    }
    Ok(())
}

async fn diagnose(url: &str) -> anyhow::Result<(String, Diagnosis)> {
    #[cfg(feature = "dynamodb")]
    if crate::open::is_dynamodb(url) {
        use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};
        let config = DynamoDbConfig::from_url(url)?;
        let table = DynamoDbTable::connect(config).await;
        let what = format!(
            "DynamoDB table {} in {}",
            table.config().table,
            table.region().unwrap_or("the default region")
        );
        return Ok((what, table.diagnose().await));
    }
    #[cfg(feature = "cosmos")]
    if crate::open::is_cosmos(url) {
        let parsed = sekiban_cosmos::CosmosUrl::parse(url)?;
        let what = format!(
            "Cosmos DB containers {} and {} of database {} at {}",
            parsed.config.container, parsed.config.leases, parsed.config.database, parsed.endpoint
        );
        return Ok((what, sekiban_cosmos::CosmosStore::diagnose_url(url).await?));
    }
    #[cfg(feature = "postgres")]
    if crate::open::is_postgres(url) {
        let config = sekiban_postgres::PostgresConfig::from_url(url)?;
        let what = format!("PostgreSQL schema {}", config.schema);
        return Ok((
            what,
            sekiban_postgres::PostgresEventStore::diagnose(&config).await,
        ));
    }
    Err(bad_input(format!(
        "doctor checks deployments: dynamodb://, cosmos:// and postgres:// URLs{}; SQLite and memory stores create what they need when opened",
        if cfg!(all(
            feature = "dynamodb",
            feature = "cosmos",
            feature = "postgres"
        )) {
            ""
        } else {
            " (this build lacks one of their features)"
        }
    )))
}
