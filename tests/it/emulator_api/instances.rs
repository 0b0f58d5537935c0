//! CogniteFile nodes (`models/instances`) and the Files API by `instanceId`.

use std::time::Duration;

use cdf_syncd::emulator::EmulatorConfig;
use serde_json::{Value, json};

use super::{assert_error, cdf, complete, get, inspect, put_part, wait_for};
use crate::support::emulator::{TestCdf, sha256_hex};

fn view() -> Value {
    json!({ "type": "view", "space": "cdf_cdm", "externalId": "CogniteFile", "version": "v1" })
}

fn node(xid: &str, props: Value) -> Value {
    json!({ "instanceType": "node", "space": "edge", "externalId": xid,
            "sources": [{ "source": view(), "properties": props }] })
}

fn instance_id(xid: &str) -> Value {
    json!({ "space": "edge", "externalId": xid })
}

async fn apply(cdf: &TestCdf, items: Value) -> (u16, Value) {
    let body = json!({ "items": items, "autoCreateDirectRelations": true, "skipOnVersionConflict": false, "replace": false });
    cdf.post("models/instances", body).await
}

#[tokio::test]
async fn a_cognitefile_node_gets_a_file_uploadable_by_instance_id() {
    let cdf = cdf().await;
    let props = json!({ "name": "r.csv", "directory": "data/line1", "mimeType": "text/csv",
                        "sourceCreatedTime": "2025-01-01T00:00:00.000+00:00" });
    let (status, reply) = apply(&cdf, json!([node("f1", props)])).await;
    assert_eq!(status, 200, "{reply}");
    let item = &reply["items"][0];
    assert_eq!(
        (item["instanceType"].clone(), item["version"].clone()),
        (json!("node"), json!(1))
    );
    assert_eq!(item["wasModified"], true);
    assert!(item["createdTime"].is_i64() && item["lastUpdatedTime"].is_i64());
    let ident = json!({ "instanceId": instance_id("f1") });
    let (status, link) = cdf
        .post("files/uploadlink", json!({ "items": [ident] }))
        .await;
    assert_eq!(status, 200, "{link}");
    let file = &link["items"][0];
    assert_eq!(file["instanceId"], instance_id("f1"));
    assert_eq!(
        (file["name"].clone(), file["mimeType"].clone()),
        (json!("r.csv"), json!("text/csv"))
    );
    assert_eq!(
        file["directory"], "data/line1",
        "a CogniteFile directory is free text"
    );
    assert_eq!(file["sourceCreatedTime"], 1_735_689_600_000_i64);
    assert_eq!(
        cdf.put(file["uploadUrl"].as_str().expect("url"), b"dm".to_vec())
            .await,
        200
    );
    assert_eq!(get(&cdf, ident).await["uploaded"], true);
    assert_eq!(inspect(&cdf, &file["id"]).sha256, Some(sha256_hex(b"dm")));
    let byids = json!({ "items": [{ "instanceType": "node", "space": "edge", "externalId": "f1" }],
                        "includeTyping": false, "sources": [{ "source": view() }] });
    let (status, nodes) = cdf.post("models/instances/byids", byids).await;
    assert_eq!(status, 200, "{nodes}");
    let props = &nodes["items"][0]["properties"]["cdf_cdm"]["CogniteFile/v1"];
    assert_eq!(
        (props["isUploaded"].clone(), props["name"].clone()),
        (json!(true), json!("r.csv"))
    );
}

#[tokio::test]
async fn multipart_by_instance_id_completes_by_instance_id() {
    let cdf = cdf().await;
    assert_eq!(
        apply(&cdf, json!([node("f2", json!({ "name": "big" }))]))
            .await
            .0,
        200
    );
    let ident = json!({ "instanceId": instance_id("f2") });
    let (status, reply) = cdf
        .post("files/multiuploadlink?parts=2", json!({ "items": [ident] }))
        .await;
    assert_eq!(status, 200, "{reply}");
    let session = reply["items"][0].clone();
    put_part(&cdf, &session, 1, b"2").await;
    put_part(&cdf, &session, 0, &[b'1'; 1024]).await;
    let body = json!({ "instanceId": instance_id("f2"), "uploadId": session["uploadId"] });
    let (status, reply) = cdf.post("files/completemultipartupload", body).await;
    assert_eq!(status, 200, "{reply}");
    let mut whole = vec![b'1'; 1024];
    whole.push(b'2');
    assert_eq!(
        inspect(&cdf, &session["id"]).sha256,
        Some(sha256_hex(&whole))
    );
    assert_eq!(complete(&cdf, &session).await.0, 400, "already completed");
}

#[tokio::test]
async fn a_new_node_is_not_found_by_the_file_service_during_the_propagation_lag() {
    let lag = Duration::from_millis(500);
    let cdf = TestCdf::start(EmulatorConfig {
        dm_propagation_lag: lag,
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(
        apply(&cdf, json!([node("late", json!({ "name": "late" }))]))
            .await
            .0,
        200
    );
    let body = json!({ "items": [{ "instanceId": instance_id("late") }] });
    let (status, reply) = cdf.post("files/uploadlink", body.clone()).await;
    let error = assert_error(status, &reply, 400);
    assert_eq!(
        error["missing"],
        json!([{ "instanceId": instance_id("late") }])
    );
    let (status, _) = cdf
        .post("files/multiuploadlink?parts=1", body.clone())
        .await;
    assert_eq!(status, 400);
    // The node itself is immediately consistent.
    let byids = json!({ "items": [{ "instanceType": "node", "space": "edge", "externalId": "late" }],
                        "sources": [{ "source": view() }] });
    assert_eq!(
        cdf.post("models/instances/byids", byids).await.1["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let waited = wait_for(Duration::from_secs(5), || async {
        cdf.post("files/uploadlink", body.clone()).await.0 == 200
    })
    .await;
    assert!(
        waited >= lag - Duration::from_millis(150),
        "visible after {waited:?}"
    );
}

#[tokio::test]
async fn only_the_cognitefile_view_and_its_property_types_are_accepted() {
    let cdf = cdf().await;
    let other_view = json!([{ "instanceType": "node", "space": "edge", "externalId": "v",
        "sources": [{ "source": { "type": "view", "space": "edge", "externalId": "MyFile", "version": "1" },
                      "properties": { "name": "x" } }] }]);
    let bad = [
        other_view,
        json!([node(
            "t",
            json!({ "sourceCreatedTime": 1_735_689_600_000_i64 })
        )]),
        json!([node("t", json!({ "sourceCreatedTime": "yesterday" }))]),
        json!([node("t", json!({ "name": 5 }))]),
        json!([node("t", json!({ "isUploaded": true }))]),
        json!([node("t", json!({ "noSuchProperty": "x" }))]),
        json!([
            node("t", json!({ "name": "a" })),
            node("t", json!({ "name": "b" }))
        ]),
    ];
    for items in bad {
        let (status, reply) = apply(&cdf, items.clone()).await;
        assert_error(status, &reply, 400);
    }
    assert!(
        cdf.emu.files().is_empty(),
        "nothing written by a rejected request"
    );
}

#[tokio::test]
async fn byids_with_the_cognitefile_source_returns_only_file_nodes() {
    let cdf = cdf().await;
    let plain = json!({ "instanceType": "node", "space": "edge", "externalId": "plain" });
    assert_eq!(
        apply(
            &cdf,
            json!([plain.clone(), node("file", json!({ "name": "f" }))])
        )
        .await
        .0,
        200
    );
    assert_eq!(cdf.emu.files().len(), 1, "only the file node has a file");
    let refs = json!([plain, { "instanceType": "node", "space": "edge", "externalId": "file" },
                      { "instanceType": "node", "space": "edge", "externalId": "nope" }]);
    let (_, all) = cdf
        .post("models/instances/byids", json!({ "items": refs }))
        .await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    let (_, files) = cdf
        .post(
            "models/instances/byids",
            json!({ "items": refs, "sources": [{ "source": view() }] }),
        )
        .await;
    assert_eq!(files["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(files["items"][0]["externalId"], "file");
}

#[tokio::test]
async fn rewriting_a_node_bumps_its_version_and_updates_the_file() {
    let cdf = cdf().await;
    apply(
        &cdf,
        json!([node("n", json!({ "name": "a", "mimeType": "text/plain" }))]),
    )
    .await;
    let (_, reply) = apply(&cdf, json!([node("n", json!({ "name": "b" }))])).await;
    assert_eq!(
        (
            reply["items"][0]["version"].clone(),
            reply["items"][0]["wasModified"].clone()
        ),
        (json!(2), json!(true))
    );
    let (_, same) = apply(&cdf, json!([node("n", json!({ "name": "b" }))])).await;
    assert_eq!(
        (
            same["items"][0]["version"].clone(),
            same["items"][0]["wasModified"].clone()
        ),
        (json!(2), json!(false))
    );
    let file = get(&cdf, json!({ "instanceId": instance_id("n") })).await;
    assert_eq!(
        (file["name"].clone(), file["mimeType"].clone()),
        (json!("b"), json!("text/plain"))
    );
    let insert_only = json!([{ "instanceType": "node", "space": "edge", "externalId": "n", "existingVersion": 0 }]);
    let (status, reply) = apply(&cdf, insert_only).await;
    assert_error(status, &reply, 409);
}

#[tokio::test]
async fn a_cognitefile_is_changed_and_deleted_through_data_modeling() {
    let cdf = cdf().await;
    apply(&cdf, json!([node("d", json!({ "name": "d" }))])).await;
    let file = get(&cdf, json!({ "instanceId": instance_id("d") })).await;
    let dm_field = json!([{ "id": file["id"], "update": { "directory": { "set": "/x" } } }]);
    let (status, reply) = cdf.post("files/update", json!({ "items": dm_field })).await;
    assert_error(status, &reply, 400);
    let classic = json!([{ "instanceId": instance_id("d"), "update": { "metadata": { "set": { "k": "v" } } } }]);
    let (status, reply) = cdf.post("files/update", json!({ "items": classic })).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = cdf
        .post("files/delete", json!({ "items": [{ "id": file["id"] }] }))
        .await;
    assert_error(status, &reply, 400);
    let gone = json!({ "items": [{ "instanceType": "node", "space": "edge", "externalId": "d" }] });
    let (status, reply) = cdf.post("models/instances/delete", gone).await;
    assert_eq!(status, 200, "{reply}");
    assert!(cdf.emu.files().is_empty());
    let (status, reply) = cdf
        .post("files/byids", json!({ "items": [{ "id": file["id"] }] }))
        .await;
    assert_error(status, &reply, 400);
}

#[tokio::test]
async fn views_declared_to_implement_cognitefile_are_accepted_with_their_properties() {
    let cdf = TestCdf::start(EmulatorConfig {
        file_views: vec!["edge:MyFile/v2".parse().expect("view")],
        ..EmulatorConfig::default()
    })
    .await;
    let through = |view: Value, xid: &str, props: Value| {
        json!([{ "instanceType": "node", "space": "edge", "externalId": xid,
                 "sources": [{ "source": view, "properties": props }] }])
    };
    let extractor = json!({ "type": "view", "space": "cdf_extraction_extensions",
                            "externalId": "CogniteExtractorFile", "version": "v1" });
    let declared =
        json!({ "type": "view", "space": "edge", "externalId": "MyFile", "version": "v2" });
    let undeclared =
        json!({ "type": "view", "space": "edge", "externalId": "Other", "version": "v1" });
    let data = json!({ "name": "x.csv", "extractedData": { "line": "1" } });

    let (status, reply) = apply(&cdf, through(extractor.clone(), "x", data.clone())).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = apply(&cdf, through(declared.clone(), "d", json!({ "name": "d" }))).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(cdf.emu.files().len(), 2, "both are file nodes");

    // extractedData is CogniteExtractorFile's: not in CogniteFile or a declared view.
    for view in [view(), declared] {
        let (status, reply) = apply(&cdf, through(view, "y", data.clone())).await;
        let error = assert_error(status, &reply, 400)["message"].to_string();
        assert!(error.contains("extractedData"), "{error}");
    }
    let bad = json!({ "extractedData": { "line": 1 } });
    assert_error_status(apply(&cdf, through(extractor.clone(), "y", bad)).await, 400);
    let (status, reply) = apply(&cdf, through(undeclared, "y", json!({ "name": "y" }))).await;
    let error = assert_error(status, &reply, 400)["message"].to_string();
    assert!(
        error.contains("edge:Other/v1"),
        "the error names the view: {error}"
    );

    // Read back through each view: each shows its own properties.
    let refs = json!([{ "instanceType": "node", "space": "edge", "externalId": "x" }]);
    let body = json!({ "items": refs, "sources": [{ "source": extractor }, { "source": view() }] });
    let (status, got) = cdf.post("models/instances/byids", body).await;
    assert_eq!(status, 200, "{got}");
    let props = &got["items"][0]["properties"];
    assert_eq!(
        props["cdf_extraction_extensions"]["CogniteExtractorFile/v1"]["extractedData"],
        json!({ "line": "1" })
    );
    assert_eq!(props["cdf_cdm"]["CogniteFile/v1"]["name"], "x.csv");
    assert!(
        props["cdf_cdm"]["CogniteFile/v1"]
            .get("extractedData")
            .is_none()
    );
}

fn assert_error_status((status, reply): (u16, Value), want: u16) {
    assert_error(status, &reply, want);
}
