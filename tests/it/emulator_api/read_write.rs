//! `byids`, `GET files/{id}`, `list`, `update`, `delete` and `extpipes/runs`.

use serde_json::{Value, json};

use super::{assert_error, cdf, chars, create, get, upload_single};
use crate::support::emulator::TestCdf;

fn ids(reply: &Value) -> Vec<i64> {
    reply["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|f| f["id"].as_i64())
        .collect()
}

#[tokio::test]
async fn byids_lists_missing_ids_unless_told_to_ignore_them() {
    let cdf = cdf().await;
    let a = create(&cdf, json!({ "name": "a", "externalId": "a" })).await;
    let items = json!([{ "externalId": "a" }, { "externalId": "gone" }, { "id": 42 }]);
    let (status, reply) = cdf.post("files/byids", json!({ "items": items })).await;
    let error = assert_error(status, &reply, 400);
    assert_eq!(
        error["missing"],
        json!([{ "externalId": "gone" }, { "id": 42 }])
    );
    let (status, reply) = cdf
        .post(
            "files/byids",
            json!({ "items": items, "ignoreUnknownIds": true }),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(ids(&reply), vec![a["id"].as_i64().unwrap_or_default()]);
    let dup = json!({ "items": [{ "id": a["id"] }, { "id": a["id"] }] });
    let (status, reply) = cdf.post("files/byids", dup).await;
    assert!(assert_error(status, &reply, 400)["duplicated"].is_array());
}

#[tokio::test]
async fn get_by_id_answers_the_file_or_missing() {
    let cdf = cdf().await;
    let a = create(&cdf, json!({ "name": "a" })).await;
    let id = a["id"].as_i64().expect("id");
    let url = cdf.api(&format!("files/{id}"));
    let resp = cdf
        .http
        .get(&url)
        .bearer_auth(&cdf.token)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    let file: Value = resp.json().await.expect("json");
    assert_eq!(file["name"], "a");
    let url = cdf.api(&format!("files/{}", id + 1_000_000));
    let resp = cdf
        .http
        .get(&url)
        .bearer_auth(&cdf.token)
        .send()
        .await
        .expect("get");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json");
    assert!(assert_error(status, &body, 400)["missing"].is_array());
}

/// Five files that differ in every list filter.
async fn list_fixture(cdf: &TestCdf) -> Vec<i64> {
    let bodies = [
        json!({ "name": "a.csv", "externalId": "gw1:a", "directory": "/gw1/x", "dataSetId": 1, "mimeType": "text/csv", "source": "s1", "metadata": { "k": "1", "o": "x" } }),
        json!({ "name": "b.csv", "externalId": "gw1:b", "directory": "/gw1/y", "dataSetId": 2, "mimeType": "text/csv", "source": "s2", "metadata": { "k": "2" } }),
        json!({ "name": "a.csv", "externalId": "gw2:a", "directory": "/gw2", "dataSetId": 1, "mimeType": "text/plain", "source": "s1" }),
        json!({ "name": "d", "externalId": "GW1:d", "directory": "/GW1" }),
        json!({ "name": "e" }),
    ];
    let mut ids = Vec::new();
    for body in bodies {
        ids.push(create(cdf, body).await["id"].as_i64().expect("id"));
    }
    upload_single(cdf, json!({ "name": "up", "directory": "/gw1/up" }), b"x").await;
    ids
}

#[tokio::test]
async fn list_filters_select_what_they_say() {
    let cdf = cdf().await;
    let f = list_fixture(&cdf).await;
    let up = cdf
        .emu
        .files()
        .iter()
        .find(|v| v.name == "up")
        .map(|v| v.id)
        .expect("up");
    let cases = [
        (json!({ "directoryPrefix": "/gw1/" }), vec![f[0], f[1], up]),
        (
            json!({ "directoryPrefix": "/gw1/", "uploaded": false }),
            vec![f[0], f[1]],
        ),
        (json!({ "uploaded": true }), vec![up]),
        (json!({ "externalIdPrefix": "gw1:" }), vec![f[0], f[1]]),
        (json!({ "dataSetIds": [{ "id": 1 }] }), vec![f[0], f[2]]),
        (
            json!({ "dataSetIds": [{ "id": 1 }, { "id": 2 }] }),
            vec![f[0], f[1], f[2]],
        ),
        (json!({ "name": "a.csv" }), vec![f[0], f[2]]),
        (json!({ "mimeType": "text/csv" }), vec![f[0], f[1]]),
        (json!({ "source": "s1" }), vec![f[0], f[2]]),
        (json!({ "metadata": { "k": "1" } }), vec![f[0]]),
        (json!({ "metadata": { "k": "1", "o": "y" } }), vec![]),
        (json!({}), vec![f[0], f[1], f[2], f[3], f[4], up]),
    ];
    for (filter, mut want) in cases {
        let (status, reply) = cdf
            .post("files/list", json!({ "filter": filter, "limit": 1000 }))
            .await;
        assert_eq!(status, 200, "{reply}");
        let mut got = ids(&reply);
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "filter {filter}");
    }
    let (status, reply) = cdf
        .post("files/list", json!({ "filter": { "dirPrefix": "/" } }))
        .await;
    assert_error(status, &reply, 400);
}

#[tokio::test]
async fn list_pages_with_a_cursor_and_limits_the_page_size() {
    let cdf = cdf().await;
    for i in 0..25 {
        create(&cdf, json!({ "name": format!("f{i}"), "directory": "/p" })).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<Value> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({ "filter": { "directoryPrefix": "/p" }, "limit": 10 });
        if let Some(c) = &cursor {
            body["cursor"] = c.clone();
        }
        let (status, reply) = cdf.post("files/list", body).await;
        assert_eq!(status, 200, "{reply}");
        pages += 1;
        seen.extend(ids(&reply));
        match reply.get("nextCursor").filter(|c| !c.is_null()) {
            Some(c) => cursor = Some(c.clone()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (25, 25));
    for limit in [0, 1001] {
        let (status, reply) = cdf.post("files/list", json!({ "limit": limit })).await;
        assert_error(status, &reply, 400);
    }
    let (status, reply) = cdf.post("files/list", json!({ "cursor": "garbage" })).await;
    assert_error(status, &reply, 400);
}

#[tokio::test]
async fn list_returns_100_items_by_default() {
    let cdf = cdf().await;
    for i in 0..101 {
        create(&cdf, json!({ "name": format!("f{i}") })).await;
    }
    let (status, reply) = cdf.post("files/list", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&reply).len(), 100);
    assert!(reply["nextCursor"].is_string());
}

async fn update(cdf: &TestCdf, items: Value) -> (u16, Value) {
    cdf.post("files/update", json!({ "items": items })).await
}

#[tokio::test]
async fn update_sets_and_clears_primitive_fields() {
    let cdf = cdf().await;
    let a = create(
        &cdf,
        json!({ "name": "a", "source": "old", "directory": "/old" }),
    )
    .await;
    let changes = json!({
        "directory": { "set": "/new" }, "source": { "setNull": true }, "mimeType": { "set": "text/csv" },
        "dataSetId": { "set": 3 }, "sourceCreatedTime": { "set": 5 }, "externalId": { "set": "xa" },
    });
    let (status, reply) = update(&cdf, json!([{ "id": a["id"], "update": changes }])).await;
    assert_eq!(status, 200, "{reply}");
    let file = get(&cdf, json!({ "externalId": "xa" })).await;
    assert_eq!(file["directory"], "/new");
    assert!(file.get("source").is_none());
    assert_eq!(
        (file["mimeType"].clone(), file["dataSetId"].clone()),
        (json!("text/csv"), json!(3))
    );
    assert_eq!(file["sourceCreatedTime"], 5);
    assert_eq!(reply["items"][0], file);
}

#[tokio::test]
async fn update_metadata_set_add_remove() {
    let cdf = cdf().await;
    let a = create(
        &cdf,
        json!({ "name": "a", "metadata": { "a": "1", "b": "2" } }),
    )
    .await;
    let ident = json!({ "id": a["id"] });
    let op = json!({ "metadata": { "add": { "c": "3", "a": "9" }, "remove": ["b"] } });
    assert_eq!(
        update(&cdf, json!([{ "id": a["id"], "update": op }]))
            .await
            .0,
        200
    );
    assert_eq!(
        get(&cdf, ident.clone()).await["metadata"],
        json!({ "a": "9", "c": "3" })
    );
    let op = json!({ "metadata": { "set": { "z": "0" } } });
    assert_eq!(
        update(&cdf, json!([{ "id": a["id"], "update": op }]))
            .await
            .0,
        200
    );
    assert_eq!(get(&cdf, ident).await["metadata"], json!({ "z": "0" }));
    let both = json!({ "metadata": { "set": {}, "add": { "q": "1" } } });
    let (status, reply) = update(&cdf, json!([{ "id": a["id"], "update": both }])).await;
    assert_error(status, &reply, 400);
}

#[tokio::test]
async fn update_lists_and_labels() {
    let cdf = cdf().await;
    let a = create(
        &cdf,
        json!({ "name": "a", "assetIds": [1, 2], "labels": [{ "externalId": "l1" }] }),
    )
    .await;
    let ident = json!({ "id": a["id"] });
    let op = json!({
        "assetIds": { "add": [3], "remove": [1] },
        "securityCategories": { "set": [7] },
        "labels": { "add": [{ "externalId": "l2" }], "remove": [{ "externalId": "l1" }] },
    });
    assert_eq!(
        update(&cdf, json!([{ "id": a["id"], "update": op }]))
            .await
            .0,
        200
    );
    let file = get(&cdf, ident).await;
    assert_eq!(file["assetIds"], json!([2, 3]));
    assert_eq!(file["securityCategories"], json!([7]));
    assert_eq!(file["labels"], json!([{ "externalId": "l2" }]));
    // Labels cannot be replaced in full.
    let set = json!({ "labels": { "set": [] } });
    let (status, reply) = update(&cdf, json!([{ "id": a["id"], "update": set }])).await;
    assert_error(status, &reply, 400);
}

#[tokio::test]
async fn update_cannot_rename() {
    let cdf = cdf().await;
    let a = create(&cdf, json!({ "name": "a" })).await;
    let op = json!({ "name": { "set": "b" } });
    let (status, reply) = update(&cdf, json!([{ "id": a["id"], "update": op }])).await;
    assert_error(status, &reply, 400);
    assert_eq!(get(&cdf, json!({ "id": a["id"] })).await["name"], "a");
}

#[tokio::test]
async fn update_is_all_or_nothing_and_checks_limits() {
    let cdf = cdf().await;
    let a = create(&cdf, json!({ "name": "a", "directory": "/a" })).await;
    let b = create(&cdf, json!({ "name": "b", "externalId": "b" })).await;
    let good = json!({ "id": a["id"], "update": { "directory": { "set": "/changed" } } });
    let bad = json!({ "id": b["id"], "update": { "directory": { "set": "relative" } } });
    let (status, reply) = update(&cdf, json!([good, bad])).await;
    assert_error(status, &reply, 400);
    assert_eq!(get(&cdf, json!({ "id": a["id"] })).await["directory"], "/a");
    let too_long = json!({ "id": b["id"], "update": { "source": { "set": chars(129) } } });
    let (status, reply) = update(&cdf, json!([too_long])).await;
    assert_error(status, &reply, 400);
    let unknown = json!({ "id": 12345, "update": { "source": { "set": "s" } } });
    let (status, reply) = update(&cdf, json!([unknown])).await;
    assert_eq!(
        assert_error(status, &reply, 400)["missing"],
        json!([{ "id": 12345 }])
    );
    let taken = json!({ "id": a["id"], "update": { "externalId": { "set": "b" } } });
    let (status, reply) = update(&cdf, json!([taken])).await;
    assert_eq!(
        assert_error(status, &reply, 409)["duplicated"],
        json!([{ "externalId": "b" }])
    );
}

#[tokio::test]
async fn delete_removes_files_and_their_content() {
    let cdf = cdf().await;
    let a = upload_single(&cdf, json!({ "name": "a", "externalId": "a" }), b"bytes").await;
    let (status, reply) = cdf
        .post(
            "files/delete",
            json!({ "items": [{ "externalId": "a" }, { "id": 99 }] }),
        )
        .await;
    assert_eq!(
        assert_error(status, &reply, 400)["missing"],
        json!([{ "id": 99 }])
    );
    assert_eq!(cdf.emu.files().len(), 1, "nothing deleted on error");
    let (status, reply) = cdf
        .post(
            "files/delete",
            json!({ "items": [{ "externalId": "a" }, { "id": 99 }], "ignoreUnknownIds": true }),
        )
        .await;
    assert_eq!((status, reply), (200, json!({})));
    assert!(cdf.emu.files().is_empty());
    let (status, reply) = cdf
        .post("files/byids", json!({ "items": [{ "id": a["id"] }] }))
        .await;
    assert_error(status, &reply, 400);
    // The externalId is free again.
    create(&cdf, json!({ "name": "a", "externalId": "a" })).await;
}

#[tokio::test]
async fn extpipe_runs_are_recorded_and_checked() {
    let cdf = cdf().await;
    let runs = json!({ "items": [
        { "externalId": "pipe", "status": "success", "message": chars(1000) },
        { "externalId": "pipe", "status": "seen", "createdTime": 5 },
    ] });
    let (status, reply) = cdf.post("extpipes/runs", runs).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["items"][1]["createdTime"], 5);
    let recorded = cdf.emu.extpipe_runs();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0]["status"], "success");
    assert_eq!(recorded[1]["status"], "seen");
    for bad in [
        json!({ "externalId": "pipe", "status": "ok" }),
        json!({ "externalId": "pipe", "status": "failure", "message": chars(1001) }),
        json!({ "status": "failure" }),
    ] {
        let (status, reply) = cdf.post("extpipes/runs", json!({ "items": [bad] })).await;
        assert_error(status, &reply, 400);
    }
    assert_eq!(cdf.emu.extpipe_runs().len(), 2);
}
