//! Field limits of `POST files` (CDF-API.md §1.1), duplicates and overwrite.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    assert_error, cdf, chars, create, create_status, get, init_multipart, inspect, put_part,
    upload_single,
};
use crate::support::emulator::sha256_hex;

const MAX_ID: i64 = 9_007_199_254_740_991;

/// `{"name":"f"}` plus one field.
fn with(field: &str, value: Value) -> Value {
    let mut body = json!({ "name": "f" });
    body[field] = value;
    body
}

#[tokio::test]
async fn name_is_required_and_1_to_256_characters() {
    let cdf = cdf().await;
    assert_eq!(
        create_status(&cdf, json!({ "name": chars(256) })).await,
        200
    );
    assert_eq!(
        create_status(&cdf, json!({ "name": chars(257) })).await,
        400
    );
    assert_eq!(create_status(&cdf, json!({ "name": "" })).await, 400);
    assert_eq!(create_status(&cdf, json!({ "externalId": "x" })).await, 400);
    // Characters, not bytes: 256 two-byte characters fit.
    assert_eq!(
        create_status(&cdf, json!({ "name": "é".repeat(256) })).await,
        200
    );
}

#[tokio::test]
async fn external_id_is_at_most_255_characters() {
    let cdf = cdf().await;
    assert_eq!(
        create_status(&cdf, with("externalId", chars(255).into())).await,
        200
    );
    assert_eq!(
        create_status(&cdf, with("externalId", format!("y{}", chars(255)).into())).await,
        400
    );
}

#[tokio::test]
async fn directory_is_absolute_and_at_most_512_characters() {
    let cdf = cdf().await;
    let at_limit = format!("/{}", chars(511));
    assert_eq!(
        create_status(&cdf, with("directory", at_limit.into())).await,
        200
    );
    let over = format!("/{}", chars(512));
    assert_eq!(
        create_status(&cdf, with("directory", over.into())).await,
        400
    );
    assert_eq!(
        create_status(&cdf, with("directory", "data/line1".into())).await,
        400
    );
    assert_eq!(
        create_status(&cdf, with("directory", "C:\\data".into())).await,
        400
    );
}

#[tokio::test]
async fn source_is_at_most_128_and_mime_type_256_characters() {
    let cdf = cdf().await;
    assert_eq!(
        create_status(&cdf, with("source", chars(128).into())).await,
        200
    );
    assert_eq!(
        create_status(&cdf, with("source", chars(129).into())).await,
        400
    );
    assert_eq!(
        create_status(&cdf, with("mimeType", chars(256).into())).await,
        200
    );
    assert_eq!(
        create_status(&cdf, with("mimeType", chars(257).into())).await,
        400
    );
}

#[tokio::test]
async fn metadata_key_is_at_most_128_bytes() {
    let cdf = cdf().await;
    // 64 two-byte characters are 128 bytes; 65 are 130 bytes but only 65 characters.
    let ok = json!({ "é".repeat(64): "v" });
    assert_eq!(create_status(&cdf, with("metadata", ok)).await, 200);
    let over = json!({ "é".repeat(65): "v" });
    assert_eq!(create_status(&cdf, with("metadata", over)).await, 400);
}

#[tokio::test]
async fn metadata_value_is_at_most_10240_bytes() {
    let cdf = cdf().await;
    let over = json!({ "k": "é".repeat(5121) }); // 10242 bytes, 5121 characters
    assert_eq!(create_status(&cdf, with("metadata", over)).await, 400);
}

#[tokio::test]
async fn metadata_keys_and_values_total_at_most_10240_bytes() {
    let cdf = cdf().await;
    let at_limit = json!({ "k": chars(10239) });
    assert_eq!(create_status(&cdf, with("metadata", at_limit)).await, 200);
    let over = json!({ "k": chars(10240) });
    assert_eq!(create_status(&cdf, with("metadata", over)).await, 400);
    let spread: BTreeMap<String, String> = (0..4).map(|i| (format!("k{i}"), chars(2600))).collect();
    assert_eq!(
        create_status(&cdf, with("metadata", json!(spread))).await,
        400
    );
}

#[tokio::test]
async fn metadata_has_at_most_256_pairs() {
    let cdf = cdf().await;
    let pairs = |n: usize| -> BTreeMap<String, String> {
        (0..n)
            .map(|i| (format!("k{i:03}"), "v".to_owned()))
            .collect()
    };
    assert_eq!(
        create_status(&cdf, with("metadata", json!(pairs(256)))).await,
        200
    );
    assert_eq!(
        create_status(&cdf, with("metadata", json!(pairs(257)))).await,
        400
    );
}

#[tokio::test]
async fn asset_ids_are_1_to_1000_ids_in_range() {
    let cdf = cdf().await;
    let ids = |n: i64| -> Vec<i64> { (1..=n).collect() };
    assert_eq!(
        create_status(&cdf, with("assetIds", json!(ids(1000)))).await,
        200
    );
    assert_eq!(
        create_status(&cdf, with("assetIds", json!(ids(1001)))).await,
        400
    );
    assert_eq!(create_status(&cdf, with("assetIds", json!([]))).await, 400);
    assert_eq!(
        create_status(&cdf, with("assetIds", json!([MAX_ID]))).await,
        200
    );
    assert_eq!(
        create_status(&cdf, with("assetIds", json!([MAX_ID + 1]))).await,
        400
    );
    assert_eq!(create_status(&cdf, with("assetIds", json!([0]))).await, 400);
}

#[tokio::test]
async fn data_set_id_is_1_to_2_pow_53_minus_1() {
    let cdf = cdf().await;
    assert_eq!(create_status(&cdf, with("dataSetId", json!(1))).await, 200);
    assert_eq!(
        create_status(&cdf, with("dataSetId", json!(MAX_ID))).await,
        200
    );
    assert_eq!(
        create_status(&cdf, with("dataSetId", json!(MAX_ID + 1))).await,
        400
    );
    assert_eq!(create_status(&cdf, with("dataSetId", json!(0))).await, 400);
}

#[tokio::test]
async fn source_times_are_not_negative() {
    let cdf = cdf().await;
    for field in ["sourceCreatedTime", "sourceModifiedTime"] {
        assert_eq!(
            create_status(&cdf, with(field, json!(0))).await,
            200,
            "{field}"
        );
        assert_eq!(
            create_status(&cdf, with(field, json!(-1))).await,
            400,
            "{field}"
        );
    }
}

#[tokio::test]
async fn security_categories_are_at_most_100() {
    let cdf = cdf().await;
    let ids = |n: i64| -> Vec<i64> { (1..=n).collect() };
    assert_eq!(
        create_status(&cdf, with("securityCategories", json!(ids(100)))).await,
        200
    );
    assert_eq!(
        create_status(&cdf, with("securityCategories", json!(ids(101)))).await,
        400
    );
}

#[tokio::test]
async fn labels_are_at_most_10_and_unique() {
    let cdf = cdf().await;
    let labels = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({ "externalId": format!("l{i}") }))
            .collect()
    };
    assert_eq!(create_status(&cdf, with("labels", labels(10))).await, 200);
    assert_eq!(create_status(&cdf, with("labels", labels(11))).await, 400);
    let twice = json!([{ "externalId": "a" }, { "externalId": "a" }]);
    assert_eq!(create_status(&cdf, with("labels", twice)).await, 400);
}

#[tokio::test]
async fn unknown_fields_and_bad_json_are_cdf_400s() {
    let cdf = cdf().await;
    let (status, body) = cdf
        .post("files", json!({ "name": "f", "nmae": "typo" }))
        .await;
    let error = assert_error(status, &body, 400);
    assert!(
        error["message"].as_str().unwrap_or("").contains("nmae"),
        "{error}"
    );
    // A wrong type is a 400 too, in the same shape.
    let (status, body) = cdf.post("files", json!({ "name": 7 })).await;
    assert_error(status, &body, 400);
    // Not JSON at all.
    let resp = cdf
        .http
        .post(cdf.api("files"))
        .bearer_auth(&cdf.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_error(status, &body, 400);
    // `uploaded` is read-only: accepted and ignored.
    let file = create(&cdf, json!({ "name": "f", "uploaded": true })).await;
    assert_eq!(file["uploaded"], false);
}

#[tokio::test]
async fn file_object_is_bare_camel_case_with_upload_url() {
    let cdf = cdf().await;
    let body = json!({
        "name": "a.csv", "externalId": "x1", "directory": "/gw/a", "source": "gw",
        "mimeType": "text/csv", "metadata": { "k": "v" }, "assetIds": [5], "dataSetId": 9,
        "sourceCreatedTime": 1, "sourceModifiedTime": 2, "securityCategories": [3],
        "labels": [{ "externalId": "l" }],
        "geoLocation": { "type": "Feature", "geometry": { "type": "Point", "coordinates": [1, 2] }, "properties": {} },
    });
    let file = create(&cdf, body.clone()).await;
    assert!(
        file.get("items").is_none(),
        "POST files answers the bare object"
    );
    assert!(
        file["uploadUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://"))
    );
    for (key, value) in body.as_object().expect("object") {
        assert_eq!(&file[key], value, "{key}");
    }
    assert!(file["id"].as_i64().is_some_and(|id| id > 0 && id <= MAX_ID));
    assert_eq!(file["uploaded"], false);
    assert!(file["createdTime"].is_i64() && file["lastUpdatedTime"].is_i64());
    assert!(file.get("uploadedTime").is_none());
}

#[tokio::test]
async fn existing_external_id_without_overwrite_is_409_duplicated() {
    let cdf = cdf().await;
    let body = json!({ "name": "a", "externalId": "dup" });
    create(&cdf, body.clone()).await;
    let (status, reply) = cdf.post("files", body.clone()).await;
    let error = assert_error(status, &reply, 409);
    assert_eq!(error["duplicated"], json!([{ "externalId": "dup" }]));
    let (status, reply) = cdf.post("files?overwrite=false", body.clone()).await;
    assert_error(status, &reply, 409);
    let (status, reply) = cdf.post("files/initmultipartupload?parts=1", body).await;
    assert_error(status, &reply, 409);
    assert_eq!(cdf.emu.files().len(), 1);
}

#[tokio::test]
async fn overwrite_keeps_id_replaces_sent_fields_but_not_directory_or_source() {
    let cdf = cdf().await;
    let first = create(&cdf, json!({
        "name": "a", "externalId": "x", "directory": "/d1", "source": "s1",
        "mimeType": "text/plain", "metadata": { "a": "1", "b": "2" }, "assetIds": [1], "dataSetId": 4,
    }))
    .await;
    let (status, second) = cdf
        .post(
            "files?overwrite=true",
            json!({
                "name": "b", "externalId": "x", "directory": "/d2", "source": "s2",
                "mimeType": "application/json", "metadata": { "c": "3" },
            }),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["id"], first["id"]);
    let stored = get(&cdf, json!({ "externalId": "x" })).await;
    assert_eq!(stored["name"], "b");
    assert_eq!(stored["mimeType"], "application/json");
    assert_eq!(
        stored["metadata"],
        json!({ "c": "3" }),
        "metadata replaced in full"
    );
    assert_eq!(
        stored["directory"], "/d1",
        "overwrite does not change directory"
    );
    assert_eq!(stored["source"], "s1", "overwrite does not change source");
    assert_eq!(
        stored["assetIds"],
        json!([1]),
        "assetIds change only when sent"
    );
    assert_eq!(stored["dataSetId"], 4);
    assert_eq!(stored["createdTime"], first["createdTime"]);
    assert_eq!(cdf.emu.files().len(), 1);
}

#[tokio::test]
async fn overwrite_without_metadata_keeps_metadata() {
    let cdf = cdf().await;
    create(
        &cdf,
        json!({ "name": "a", "externalId": "x", "metadata": { "a": "1" } }),
    )
    .await;
    let (status, _) = cdf
        .post(
            "files?overwrite=true",
            json!({ "name": "a", "externalId": "x" }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = cdf
        .post(
            "files?overwrite=true",
            json!({ "name": "a", "externalId": "x", "assetIds": [7] }),
        )
        .await;
    assert_eq!(status, 200);
    let stored = get(&cdf, json!({ "externalId": "x" })).await;
    assert_eq!(stored["metadata"], json!({ "a": "1" }));
    assert_eq!(stored["assetIds"], json!([7]));
}

#[tokio::test]
async fn overwrite_keeps_old_content_until_the_new_upload_completes() {
    let cdf = cdf().await;
    let body = json!({ "name": "a", "externalId": "x" });
    let file = upload_single(&cdf, body.clone(), b"old content").await;
    assert_eq!(
        get(&cdf, json!({ "id": file["id"] })).await["uploaded"],
        true
    );
    let session = cdf
        .post("files/initmultipartupload?parts=1&overwrite=true", body)
        .await
        .1;
    assert_eq!(session["id"], file["id"]);
    // Until complete: the old content, and `uploaded` reports the pending upload.
    put_part(&cdf, &session, 0, b"new content").await;
    let view = inspect(&cdf, &file["id"]);
    assert_eq!(
        view.sha256.as_deref(),
        Some(sha256_hex(b"old content").as_str())
    );
    assert_eq!(view.content_writes, 1);
    assert!(!view.uploaded);
    let link = cdf
        .post(
            "files/downloadlink",
            json!({ "items": [{ "id": file["id"] }] }),
        )
        .await
        .1;
    let url = link["items"][0]["downloadUrl"]
        .as_str()
        .expect("downloadUrl")
        .to_owned();
    let old = cdf
        .http
        .get(&url)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&old[..], b"old content");
    let (status, reply) = super::complete(&cdf, &session).await;
    assert_eq!(status, 200, "{reply}");
    let view = inspect(&cdf, &file["id"]);
    assert_eq!(
        view.sha256.as_deref(),
        Some(sha256_hex(b"new content").as_str())
    );
    assert_eq!(view.content_writes, 2);
    assert!(view.uploaded);
}

#[tokio::test]
async fn multipart_init_checks_the_same_limits() {
    let cdf = cdf().await;
    let (status, reply) = cdf
        .post(
            "files/initmultipartupload?parts=2",
            json!({ "name": "a", "directory": "rel" }),
        )
        .await;
    assert_error(status, &reply, 400);
    let session = init_multipart(&cdf, json!({ "name": "a", "directory": "/abs" }), 2).await;
    assert_eq!(session["directory"], "/abs");
}
