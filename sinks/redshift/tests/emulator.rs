//! The Redshift Data API emulator driven by the real `aws-sdk-redshiftdata`
//! client: statuses and result shapes, a batch as one transaction, COPY of
//! gzip CSV from a prefix, `stl_load_errors`, and the documented errors.

mod support;

use std::io::Write;
use std::time::Duration;

use aws_sdk_redshiftdata::types::{Field, StatusString};
use aws_sdk_redshiftdata::Client;

const CLUSTER: &str = "emulator-test";

async fn wait(client: &Client, id: &str) -> aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput {
    for _ in 0..500 {
        let out = client.describe_statement().id(id).send().await.expect("describe");
        if matches!(out.status(), Some(StatusString::Finished | StatusString::Failed | StatusString::Aborted)) {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("statement {id} did not end");
}

async fn batch(client: &Client, sqls: &[String]) -> aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput {
    let out = client.batch_execute_statement().cluster_identifier(CLUSTER).db_user("u").database("dev").set_sqls(Some(sqls.to_vec())).send().await.expect("batch");
    wait(client, out.id().expect("id")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_answers_the_sdk_like_the_service() {
    let Some(env) = support::env() else { return };
    let client = support::data_api(&env.data_api);
    let table = support::unique("emu");

    // A batch: statuses per sub-statement, typed results.
    let done = batch(&client, &[format!("CREATE TABLE {table} (id INT, name VARCHAR(3), at TIMESTAMP)"), format!("INSERT INTO {table} VALUES (1, 'a', getdate())"), format!("SELECT id, name FROM {table}")]).await;
    assert_eq!(done.status(), Some(&StatusString::Finished), "{done:?}");
    assert_eq!(done.sub_statements().len(), 3);
    assert_eq!(done.sub_statements()[1].result_rows(), 1);
    assert!(done.created_at().is_some() && done.sub_statements()[2].redshift_query_id() > 0);
    let rows = client.get_statement_result().id(format!("{}:3", done.id())).send().await.expect("result");
    assert_eq!(rows.records(), [vec![Field::LongValue(1), Field::StringValue("a".into())]]);
    assert_eq!(rows.column_metadata()[0].type_name(), Some("int4"));

    // One transaction: a failing statement rolls the earlier ones back.
    let failed = batch(&client, &[format!("INSERT INTO {table} VALUES (2, 'b', NULL)"), "SELECT * FROM no_such_table".to_owned(), "SELECT 1".to_owned()]).await;
    assert_eq!(failed.status(), Some(&StatusString::Failed));
    assert!(failed.error().unwrap_or_default().contains("no_such_table"), "{failed:?}");
    let subs: Vec<&str> = failed.sub_statements().iter().map(|s| s.status().map(|s| s.as_str()).unwrap_or("")).collect();
    assert_eq!(subs, ["FINISHED", "FAILED", "ABORTED"]);
    let count = batch(&client, &[format!("SELECT COUNT(*) FROM {table}")]).await;
    let rows = client.get_statement_result().id(format!("{}:1", count.id())).send().await.expect("result");
    assert_eq!(rows.records()[0][0], Field::LongValue(1));

    // COPY: gzip CSV under a prefix, with a header line.
    let s3 = support::s3(&env.s3);
    let bucket = "shardline-redshift-emulator-test";
    support::create_bucket(&s3, bucket).await;
    let gz = |text: &str| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).expect("gzip");
        enc.finish().expect("gzip")
    };
    for (key, text) in [(format!("{table}/a.csv.gz"), "id,name,at\n10,x,2024-01-02 03:04:05\n11,\"y\",\n"), (format!("{table}/b.csv.gz"), "id,name,at\n12,z,\n")] {
        s3.put_object().bucket(bucket).key(key).body(gz(text).into()).send().await.expect("put");
    }
    let copy = batch(&client, &[format!("COPY {table} FROM 's3://{bucket}/{table}/' IAM_ROLE 'arn:aws:iam::1:role/r' CSV GZIP IGNOREHEADER 1")]).await;
    assert_eq!(copy.status(), Some(&StatusString::Finished), "{copy:?}");
    assert_eq!(copy.sub_statements()[0].result_rows(), 3);

    // A bad row: FAILED with Redshift's text, details in stl_load_errors.
    s3.put_object().bucket(bucket).key(format!("{table}-bad.json")).body(b"{\"id\":20,\"name\":\"ok\"}\n{\"id\":\"x1\",\"name\":\"no\"}\n".to_vec().into()).send().await.expect("put");
    let bad = batch(&client, &[format!("COPY {table} FROM 's3://{bucket}/{table}-bad.json' CREDENTIALS 'aws_access_key_id=A;aws_secret_access_key=B' FORMAT AS JSON 'auto'")]).await;
    assert_eq!(bad.status(), Some(&StatusString::Failed));
    assert!(bad.error().unwrap_or_default().contains(&format!("Load into table '{table}' failed")), "{bad:?}");
    assert!(bad.sub_statements()[0].query_string().unwrap_or_default().contains("CREDENTIALS '***'"));
    let query = bad.sub_statements()[0].redshift_query_id();
    let errors = batch(&client, &[format!("SELECT line_number, colname, raw_field_value, err_code FROM stl_load_errors WHERE query = {query}")]).await;
    let rows = client.get_statement_result().id(format!("{}:1", errors.id())).send().await.expect("result");
    assert_eq!(rows.records(), [vec![Field::LongValue(2), Field::StringValue("id".into()), Field::StringValue("x1".into()), Field::LongValue(1207)]]);

    // Documented errors.
    let e = client.execute_statement().sql("select 1").database("dev").send().await.expect_err("no target");
    assert!(e.as_service_error().is_some_and(|e| e.is_validation_exception()), "{e:?}");
    let e = client.describe_statement().id("6f1a2b3c-0000-4000-8000-000000000000").send().await.expect_err("unknown id");
    assert!(e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()), "{e:?}");
    support::set_available(&env.data_api, "down-cluster", false);
    let e = client.execute_statement().sql("select 1").cluster_identifier("down-cluster").db_user("u").database("dev").send().await.expect_err("unavailable");
    assert!(e.as_service_error().is_some_and(|e| e.is_execute_statement_exception()), "{e:?}");
    support::set_available(&env.data_api, "down-cluster", true);
}
