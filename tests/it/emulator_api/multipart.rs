//! Multipart uploads and links: part counts, the part-size rule, completion checks,
//! assembly order, `uploaded` delay, uploadlink / multiuploadlink, downloadlink.

use std::time::Duration;

use cdf_syncd::emulator::EmulatorConfig;
use serde_json::{Value, json};

use super::{
    assert_error, cdf, complete, create, get, init_multipart, inspect, put_part, upload_multipart,
    upload_single, wait_for,
};
use crate::support::emulator::{TestCdf, sha256_hex};

/// 1 KiB: the minimum part size of `TestCdf::small_parts`.
const MIN: usize = 1024;

#[tokio::test]
async fn parts_must_be_1_to_250() {
    let cdf = cdf().await;
    for query in ["parts=0", "parts=251", "parts=-1", "parts=two", ""] {
        let (status, reply) = cdf
            .post(
                &format!("files/initmultipartupload?{query}"),
                json!({ "name": "a" }),
            )
            .await;
        assert_error(status, &reply, 400);
    }
    let session = init_multipart(&cdf, json!({ "name": "a" }), 250).await;
    assert_eq!(session["uploadUrls"].as_array().map(Vec::len), Some(250));
    let (status, reply) = cdf
        .post(
            "files/multiuploadlink?parts=251",
            json!({ "items": [{ "id": session["id"] }] }),
        )
        .await;
    assert_error(status, &reply, 400);
}

#[tokio::test]
async fn initmultipartupload_answers_201_with_the_bare_object() {
    let cdf = cdf().await;
    let session = init_multipart(&cdf, json!({ "name": "a", "externalId": "x" }), 3).await;
    assert!(session.get("items").is_none());
    assert_eq!(session["externalId"], "x");
    assert!(session["uploadId"].as_str().is_some_and(|s| !s.is_empty()));
    let urls: Vec<&str> = session["uploadUrls"]
        .as_array()
        .expect("uploadUrls")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(urls.len(), 3);
    assert_eq!(
        urls.iter().collect::<std::collections::HashSet<_>>().len(),
        3,
        "one URL per part"
    );
}

#[tokio::test]
async fn every_part_but_the_last_must_reach_the_minimum_size() {
    let cdf = cdf().await;
    let session = init_multipart(&cdf, json!({ "name": "a" }), 2).await;
    put_part(&cdf, &session, 0, &vec![1; MIN - 1]).await;
    put_part(&cdf, &session, 1, b"tail").await;
    let (status, reply) = complete(&cdf, &session).await;
    assert_error(status, &reply, 400);
    assert!(!inspect(&cdf, &session["id"]).uploaded);
    // Re-PUT of part 0 replaces it; the session is still open after the failed complete.
    put_part(&cdf, &session, 0, &vec![1; MIN]).await;
    let (status, reply) = complete(&cdf, &session).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply, json!({}));
    assert_eq!(inspect(&cdf, &session["id"]).size, Some(MIN as u64 + 4));
}

#[tokio::test]
async fn the_default_minimum_part_size_is_5_mib() {
    let cdf = TestCdf::start(EmulatorConfig::default()).await;
    let session = init_multipart(&cdf, json!({ "name": "a" }), 2).await;
    put_part(&cdf, &session, 0, &vec![0; 5 * 1024 * 1024 - 1]).await;
    put_part(&cdf, &session, 1, b"x").await;
    let (status, reply) = complete(&cdf, &session).await;
    assert_error(status, &reply, 400);
    put_part(&cdf, &session, 0, &vec![0; 5 * 1024 * 1024]).await;
    assert_eq!(complete(&cdf, &session).await.0, 200);
}

#[tokio::test]
async fn a_single_small_or_empty_last_part_is_fine() {
    let cdf = cdf().await;
    let session = upload_multipart(&cdf, json!({ "name": "empty" }), &[b""]).await;
    let view = inspect(&cdf, &session["id"]);
    assert_eq!(view.size, Some(0));
    assert!(view.uploaded);
    let session = upload_multipart(&cdf, json!({ "name": "tiny" }), &[b"hi"]).await;
    assert_eq!(
        inspect(&cdf, &session["id"]).sha256,
        Some(sha256_hex(b"hi"))
    );
}

#[tokio::test]
async fn complete_needs_every_part() {
    let cdf = cdf().await;
    let session = init_multipart(&cdf, json!({ "name": "a" }), 3).await;
    put_part(&cdf, &session, 0, &vec![0; MIN]).await;
    put_part(&cdf, &session, 2, b"end").await;
    let (status, reply) = complete(&cdf, &session).await;
    let error = assert_error(status, &reply, 400);
    assert!(
        error["message"].as_str().unwrap_or("").contains("[1]"),
        "{error}"
    );
    assert_eq!(inspect(&cdf, &session["id"]).content_writes, 0);
}

#[tokio::test]
async fn complete_needs_the_right_upload_id() {
    let cdf = cdf().await;
    let a = init_multipart(&cdf, json!({ "name": "a" }), 1).await;
    let b = init_multipart(&cdf, json!({ "name": "b" }), 1).await;
    put_part(&cdf, &a, 0, b"a").await;
    put_part(&cdf, &b, 0, b"b").await;
    let unknown = json!({ "id": a["id"], "uploadId": "no-such-upload" });
    let (status, reply) = cdf.post("files/completemultipartupload", unknown).await;
    assert_error(status, &reply, 400);
    let foreign = json!({ "id": a["id"], "uploadId": b["uploadId"] });
    let (status, reply) = cdf.post("files/completemultipartupload", foreign).await;
    assert_error(status, &reply, 400);
    assert_eq!(inspect(&cdf, &a["id"]).content_writes, 0);
    // A single-part session's token is no uploadId either.
    let single = create(&cdf, json!({ "name": "s" })).await;
    let token = single["uploadUrl"]
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or_default();
    let (status, reply) = cdf
        .post(
            "files/completemultipartupload",
            json!({ "id": single["id"], "uploadId": token }),
        )
        .await;
    assert_error(status, &reply, 400);
}

#[tokio::test]
async fn complete_takes_exactly_one_identifier() {
    let cdf = cdf().await;
    let session = init_multipart(&cdf, json!({ "name": "a", "externalId": "x" }), 1).await;
    put_part(&cdf, &session, 0, b"data").await;
    let both = json!({ "id": session["id"], "externalId": "x", "uploadId": session["uploadId"] });
    let (status, reply) = cdf.post("files/completemultipartupload", both).await;
    assert_error(status, &reply, 400);
    let none = json!({ "uploadId": session["uploadId"] });
    let (status, reply) = cdf.post("files/completemultipartupload", none).await;
    assert_error(status, &reply, 400);
    let by_xid = json!({ "externalId": "x", "uploadId": session["uploadId"] });
    let (status, reply) = cdf.post("files/completemultipartupload", by_xid).await;
    assert_eq!(status, 200, "{reply}");
}

#[tokio::test]
async fn completing_twice_is_an_error_and_changes_nothing() {
    let cdf = cdf().await;
    let session = upload_multipart(&cdf, json!({ "name": "a" }), &[b"once"]).await;
    let (status, reply) = complete(&cdf, &session).await;
    assert_error(status, &reply, 400);
    let view = inspect(&cdf, &session["id"]);
    assert_eq!(view.content_writes, 1);
    assert_eq!(view.sha256, Some(sha256_hex(b"once")));
}

#[tokio::test]
async fn parts_are_assembled_in_index_order_whatever_the_arrival_order() {
    let cdf = cdf().await;
    let parts: Vec<Vec<u8>> = (0u8..3)
        .map(|i| vec![b'a' + i; MIN + usize::from(i)])
        .collect();
    let session = init_multipart(&cdf, json!({ "name": "a" }), 3).await;
    for i in [2, 0, 1] {
        put_part(&cdf, &session, i, &parts[i]).await;
    }
    assert_eq!(complete(&cdf, &session).await.0, 200);
    let whole = parts.concat();
    let view = inspect(&cdf, &session["id"]);
    assert_eq!(view.sha256, Some(sha256_hex(&whole)));
    assert_eq!(view.size, Some(whole.len() as u64));
}

#[tokio::test]
async fn uploaded_turns_true_only_after_the_configured_delay() {
    let delay = Duration::from_millis(400);
    let cdf = TestCdf::start(EmulatorConfig {
        min_part_size: 1024,
        uploaded_delay: delay,
        ..EmulatorConfig::default()
    })
    .await;
    let session = upload_multipart(&cdf, json!({ "name": "a" }), &[b"x"]).await;
    let ident = json!({ "id": session["id"] });
    let first = get(&cdf, ident.clone()).await;
    assert_eq!(first["uploaded"], false);
    assert!(first.get("uploadedTime").is_none());
    let (status, listed) = cdf
        .post("files/list", json!({ "filter": { "uploaded": false } }))
        .await;
    assert_eq!(
        (status, listed["items"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let waited = wait_for(Duration::from_secs(5), || async {
        get(&cdf, ident.clone()).await["uploaded"] == true
    })
    .await;
    assert!(
        waited >= delay - Duration::from_millis(100),
        "true after {waited:?}"
    );
    assert!(get(&cdf, ident).await["uploadedTime"].is_i64());
}

#[tokio::test]
async fn uploadlink_and_multiuploadlink_take_exactly_one_item() {
    let cdf = cdf().await;
    let a = create(&cdf, json!({ "name": "a", "externalId": "a" })).await;
    create(&cdf, json!({ "name": "b", "externalId": "b" })).await;
    let two = json!({ "items": [{ "externalId": "a" }, { "externalId": "b" }] });
    for path in ["files/uploadlink", "files/multiuploadlink?parts=1"] {
        let (status, reply) = cdf.post(path, two.clone()).await;
        assert_error(status, &reply, 400);
        let (status, reply) = cdf.post(path, json!({ "items": [] })).await;
        assert_error(status, &reply, 400);
        let (status, reply) = cdf
            .post(path, json!({ "items": [{ "externalId": "zz" }] }))
            .await;
        let error = assert_error(status, &reply, 400);
        assert_eq!(error["missing"], json!([{ "externalId": "zz" }]));
    }
    let (status, reply) = cdf
        .post("files/uploadlink", json!({ "items": [{ "id": a["id"] }] }))
        .await;
    assert_eq!(status, 200, "{reply}");
    let item = &reply["items"][0];
    assert_eq!(item["id"], a["id"]);
    let url = item["uploadUrl"].as_str().expect("uploadUrl");
    assert_eq!(cdf.put(url, b"linked".to_vec()).await, 200);
    assert_eq!(inspect(&cdf, &a["id"]).sha256, Some(sha256_hex(b"linked")));
}

#[tokio::test]
async fn multiuploadlink_opens_a_fresh_session_for_an_existing_file() {
    let cdf = cdf().await;
    let file = upload_single(&cdf, json!({ "name": "a", "externalId": "x" }), b"v1").await;
    let (status, reply) = cdf
        .post(
            "files/multiuploadlink?parts=2",
            json!({ "items": [{ "externalId": "x" }] }),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let session = reply["items"][0].clone();
    assert_eq!(session["id"], file["id"]);
    assert_eq!(session["uploadUrls"].as_array().map(Vec::len), Some(2));
    put_part(&cdf, &session, 0, &vec![7; MIN]).await;
    put_part(&cdf, &session, 1, b"!").await;
    assert_eq!(complete(&cdf, &session).await.0, 200);
    let mut whole = vec![7; MIN];
    whole.push(b'!');
    assert_eq!(inspect(&cdf, &file["id"]).sha256, Some(sha256_hex(&whole)));
}

#[tokio::test]
async fn downloadlink_round_trips_the_content() {
    let cdf = cdf().await;
    let file = upload_single(&cdf, json!({ "name": "a", "externalId": "x" }), b"payload").await;
    let (status, reply) = cdf
        .post(
            "files/downloadlink?extendedExpiration=true",
            json!({ "items": [{ "externalId": "x" }, { "id": file["id"] }] }),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["items"][0]["externalId"], "x",
        "items echo the identifier as given"
    );
    assert_eq!(reply["items"][1]["id"], file["id"]);
    let url = reply["items"][0]["downloadUrl"]
        .as_str()
        .expect("downloadUrl");
    let body = cdf
        .http
        .get(url)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&body[..], b"payload");
    // No content yet: no link; unknown file: missing.
    let empty = create(&cdf, json!({ "name": "e" })).await;
    let (status, reply) = cdf
        .post(
            "files/downloadlink",
            json!({ "items": [{ "id": empty["id"] }] }),
        )
        .await;
    assert_error(status, &reply, 400);
    let (status, reply) = cdf
        .post(
            "files/downloadlink",
            json!({ "items": [{ "externalId": "nope" }] }),
        )
        .await;
    assert_eq!(
        assert_error(status, &reply, 400)["missing"],
        json!([{ "externalId": "nope" }])
    );
}
