//! Extraction pipelines: the emulator's config revisions, and the daemon's run reports
//! (startup, heartbeat, one failure per stuck episode then a success, uploads that go
//! on when runs are refused) and remote config (roots from the pipeline, a new revision
//! applied without a restart, an invalid one refused with a failure run).

use cdf_syncd::emulator::{Faults, ScriptedFault};
use serde_json::{Value, json};

use crate::support::daemon::{Tree, pattern, terminate, wait_for};
use crate::support::emulator::{TestCdf, sha256_hex};

const PIPELINE: &str = "gw01-files";

/// `[cdf]` of the tree's configuration gets the pipeline and `extra` lines.
fn with_pipeline(t: &Tree, extra: &str) {
    let text = std::fs::read_to_string(&t.config).expect("config");
    let keys =
        format!("allow_insecure_http = true\nextraction_pipeline = \"{PIPELINE}\"\n{extra}\n");
    std::fs::write(
        &t.config,
        text.replacen("allow_insecure_http = true\n", &keys, 1),
    )
    .expect("config");
}

/// The runs posted so far: (status, message).
fn runs(t: &Tree) -> Vec<(String, String)> {
    t.cdf
        .emu
        .extpipe_runs()
        .iter()
        .map(|r| {
            assert_eq!(r["externalId"], PIPELINE, "{r}");
            (
                r["status"].as_str().unwrap_or_default().to_owned(),
                r["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn has_run(t: &Tree, status: &str, fragment: &str) -> bool {
    runs(t)
        .iter()
        .any(|(s, m)| s == status && m.contains(fragment))
}

fn synced(t: &Tree, external_id: &str, bytes: &[u8]) -> bool {
    t.cdf.emu.files().iter().any(|f| {
        f.external_id.as_deref() == Some(external_id)
            && f.uploaded
            && f.sha256.as_deref() == Some(sha256_hex(bytes).as_str())
    })
}

/// Every message is within CDF's 1000 characters and holds no secret.
fn assert_clean_messages(t: &Tree) {
    for (status, message) in runs(t) {
        assert!(message.chars().count() <= 1000, "{status}: {message}");
        assert!(!message.contains("demo-secret"), "{status}: {message}");
        assert!(!message.contains("access_token"), "{status}: {message}");
    }
}

async fn get(cdf: &TestCdf, path_and_query: &str) -> (u16, Value) {
    let resp = cdf
        .http
        .get(cdf.api(path_and_query))
        .bearer_auth(&cdf.token)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Creates a config revision for [`PIPELINE`]; returns its number.
async fn new_revision(cdf: &TestCdf, text: &str) -> i64 {
    let (status, reply) = cdf
        .post(
            "extpipes/config",
            json!({ "externalId": PIPELINE, "config": text, "description": "test" }),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    reply["revision"].as_i64().expect("revision")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_keeps_config_revisions() {
    let cdf = TestCdf::start(Default::default()).await;
    let (status, reply) = get(&cdf, &format!("extpipes/config?externalId={PIPELINE}")).await;
    assert_eq!(status, 404, "{reply}");
    assert_eq!(reply["error"]["code"], 404, "{reply}");
    assert_eq!(new_revision(&cdf, "a = 1").await, 1);
    assert_eq!(new_revision(&cdf, "a = 2").await, 2);
    let (status, latest) = get(&cdf, &format!("extpipes/config?externalId={PIPELINE}")).await;
    assert_eq!(status, 200);
    assert_eq!(latest["revision"], 2);
    assert_eq!(latest["config"], "a = 2");
    assert_eq!(latest["externalId"], PIPELINE);
    assert!(latest["createdTime"].as_i64().is_some(), "{latest}");
    assert_eq!(latest["description"], "test");
    let (_, first) = get(
        &cdf,
        &format!("extpipes/config?externalId={PIPELINE}&revision=1"),
    )
    .await;
    assert_eq!(first["config"], "a = 1");
    let (status, _) = get(
        &cdf,
        &format!("extpipes/config?externalId={PIPELINE}&revision=9"),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(&cdf, "extpipes/config").await;
    assert_eq!(status, 400);
    let (_, list) = get(
        &cdf,
        &format!("extpipes/config/revisions?externalId={PIPELINE}"),
    )
    .await;
    let revisions: Vec<i64> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["revision"].as_i64().expect("revision"))
        .collect();
    assert_eq!(revisions, [2, 1]);
    let (status, reverted) = cdf
        .post(
            "extpipes/config/revert",
            json!({ "externalId": PIPELINE, "revision": 1 }),
        )
        .await;
    assert_eq!(status, 200, "{reverted}");
    assert_eq!(
        (reverted["revision"].as_i64(), reverted["config"].as_str()),
        (Some(3), Some("a = 1"))
    );
    let (status, reply) = cdf
        .post(
            "extpipes/config",
            json!({ "externalId": PIPELINE, "bogus": 1 }),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
}

/// Waits for a `failure` run naming `cause`, followed by a `success` "recovered".
async fn failure_then_recovery(t: &Tree, cause: &str) {
    wait_for(30, "the failure, then the recovery", || {
        let all = runs(t);
        let failure = all
            .iter()
            .position(|(s, m)| s == "failure" && m.contains(cause));
        let recovered = all
            .iter()
            .position(|(s, m)| s == "success" && m.contains("recovered"));
        matches!((failure, recovered), (Some(f), Some(r)) if f < r)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_startup_run_then_heartbeats() {
    let t = Tree::new("").await;
    with_pipeline(&t, "extraction_pipeline_heartbeat = \"1s\"");
    let daemon = t.start_daemon(0);
    wait_for(30, "the startup run", || {
        has_run(&t, "success", "New startup of cdf-syncd")
    })
    .await;
    wait_for(30, "two heartbeats", || {
        runs(&t).iter().filter(|(s, _)| s == "seen").count() >= 2
    })
    .await;
    assert!(terminate(daemon).await.success());
    let all = runs(&t);
    assert_eq!(all[0].0, "success", "{all:?}");
    assert!(all.iter().all(|(s, _)| s != "failure"), "{all:?}");
    let last = all.last().expect("runs");
    assert!(
        last.0 == "success" && last.1.starts_with("stopped:"),
        "a clean stop is a success run: {all:?}"
    );
    assert_clean_messages(&t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_are_one_failure_run_then_a_success() {
    let t = Tree::new("").await;
    with_pipeline(&t, "extraction_pipeline_failure_after = \"1s\"");
    let bytes = pattern(900, 5);
    t.write("a.txt", &bytes);
    // The identity provider refuses the client for a while (e.g. a rotated secret not
    // yet everywhere): nothing can reach CDF, the failure is reported afterwards.
    t.cdf.emu.set_faults(Faults {
        scripted: vec![ScriptedFault::new("token", 401, 100_000)],
        ..Faults::default()
    });
    let daemon = t.start_daemon(0);
    wait_for(30, "the failure found", || {
        t.daemon_log(0).contains("extraction pipeline: failure run")
    })
    .await;
    assert!(runs(&t).is_empty(), "nothing can be posted without a token");
    t.cdf.emu.set_faults(Faults::default());
    wait_for(60, "the file", || synced(&t, "gw:it:/a.txt", &bytes)).await;
    failure_then_recovery(&t, "credentials rejected").await;
    assert!(terminate(daemon).await.success());
    let all = runs(&t);
    assert_eq!(
        all.iter().filter(|(s, _)| s == "failure").count(),
        1,
        "one failure per episode: {all:?}"
    );
    // Runs carry the time they describe: the failure is older than the recovery.
    let created: Vec<i64> = t
        .cdf
        .emu
        .extpipe_runs()
        .iter()
        .map(|r| r["createdTime"].as_i64().expect("createdTime"))
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");
    assert_clean_messages(&t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_threshold_is_one_failure_then_a_success() {
    let t = Tree::new("").await;
    with_pipeline(&t, "extraction_pipeline_failure_after = \"1s\"");
    let daemon = t.start_daemon(0);
    wait_for(30, "the startup run", || {
        has_run(&t, "success", "New startup")
    })
    .await;
    t.cdf.emu.set_down(true);
    let bytes = pattern(3000, 9);
    t.write("during.bin", &bytes);
    wait_for(30, "the pause", || {
        t.daemon_log(0).contains("pipeline paused")
    })
    .await;
    wait_for(30, "the failure found", || {
        t.daemon_log(0).contains("extraction pipeline: failure run")
    })
    .await;
    // The outage goes on past the failure run (a probe fails after it): still one
    // failure for the episode.
    let probes = |t: &Tree| t.daemon_log(0).matches("still paused").count();
    let before = probes(&t);
    wait_for(30, "a failed probe after the failure run", || {
        probes(&t) > before
    })
    .await;
    t.cdf.emu.set_down(false);
    wait_for(60, "the file", || synced(&t, "gw:it:/during.bin", &bytes)).await;
    failure_then_recovery(&t, "CDF unreachable").await;
    assert!(terminate(daemon).await.success());
    let all = runs(&t);
    assert_eq!(
        all.iter().filter(|(s, _)| s == "failure").count(),
        1,
        "{all:?}"
    );
    assert_clean_messages(&t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_go_on_when_runs_are_refused() {
    let t = Tree::new("").await;
    with_pipeline(&t, "extraction_pipeline_heartbeat = \"1s\"");
    t.cdf.emu.set_faults(Faults {
        scripted: vec![
            ScriptedFault::new("extpipes/runs", 429, 3),
            ScriptedFault::new("extpipes/runs", 500, 100_000),
        ],
        ..Faults::default()
    });
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("f{i}.bin"), pattern(1000 + i * 70_000, i as u8)))
        .collect();
    for (rel, bytes) in &files {
        t.write(rel, bytes);
    }
    let daemon = t.start_daemon(0);
    wait_for(60, "every file", || {
        files
            .iter()
            .all(|(rel, bytes)| synced(&t, &format!("gw:it:/{rel}"), bytes))
    })
    .await;
    wait_for(30, "refused run reports", || {
        t.cdf.emu.counters().with_status("POST extpipes/runs", 500) >= 2
    })
    .await;
    assert!(terminate(daemon).await.success());
    let c = t.cdf.emu.counters();
    assert_eq!(c.with_status("POST extpipes/runs", 429), 3, "{c:?}");
    assert!(runs(&t).is_empty());
    let log = t.daemon_log(0);
    assert!(
        log.contains("cannot report to the extraction pipeline now"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_config_supplies_roots_and_new_revisions_apply_without_restart() {
    let t = Tree::new("").await;
    // The local file keeps only [cdf], [sync], [upload] and [state]: no roots.
    let text = std::fs::read_to_string(&t.config).expect("config");
    let (head, tail) = text.split_once("[[roots]]").expect("roots");
    let (_, rest) = tail.split_once("[sync]").expect("sync");
    std::fs::write(&t.config, format!("{head}[sync]{rest}")).expect("config");
    with_pipeline(
        &t,
        "remote_config = true\nremote_config_interval = \"1s\"\nextraction_pipeline_failure_after = \"1s\"",
    );
    let far = t.dir.path().join("far");
    let more = t.dir.path().join("more");
    for dir in [&far, &more] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    let root = |id: &str, dir: &std::path::Path| {
        format!(
            "[[roots]]\nid = \"{id}\"\npath = \"{}\"\nexternal_id_prefix = \"gw:\"\n",
            dir.display()
        )
    };
    let first = root("far", &far);
    assert_eq!(new_revision(&t.cdf, &first).await, 1);
    let a = pattern(800, 1);
    std::fs::write(far.join("a.txt"), &a).expect("write");

    let daemon = t.start_daemon(0);
    wait_for(30, "a file of the remote root", || {
        synced(&t, "gw:far:/a.txt", &a)
    })
    .await;
    assert!(has_run(&t, "success", "remote config revision 1"));

    // Revision 2 adds a root: applied without a restart.
    let b = pattern(900, 2);
    std::fs::write(more.join("b.txt"), &b).expect("write");
    let second = format!("{first}\n{}", root("more", &more));
    assert_eq!(new_revision(&t.cdf, &second).await, 2);
    wait_for(30, "a file of the root revision 2 added", || {
        synced(&t, "gw:more:/b.txt", &b)
    })
    .await;
    wait_for(30, "the applied run", || {
        has_run(&t, "success", "remote config revision 2 applied")
    })
    .await;

    // Revision 3 is invalid: refused with a failure run; revision 2 stays.
    let bad = format!("{second}\n[[roots]]\nid = \"bad\"\npath = \"relative/dir\"\n");
    assert_eq!(new_revision(&t.cdf, &bad).await, 3);
    wait_for(30, "the refusal", || {
        has_run(&t, "failure", "remote config revision 3 refused")
    })
    .await;
    let refusal = runs(&t)
        .into_iter()
        .find(|(s, m)| s == "failure" && m.contains("revision 3"))
        .expect("refusal");
    let line = bad
        .lines()
        .position(|l| l.contains("relative/dir"))
        .expect("line")
        + 1;
    assert!(
        refusal
            .1
            .contains(&format!("remote config (revision 3):{line}: roots[2].path")),
        "{refusal:?}"
    );
    let c = pattern(1000, 3);
    std::fs::write(more.join("c.txt"), &c).expect("write");
    wait_for(30, "a file of revision 2's root after the refusal", || {
        synced(&t, "gw:more:/c.txt", &c)
    })
    .await;
    assert!(terminate(daemon).await.success());
    let log = t.daemon_log(0);
    assert!(log.contains("configuration reloaded"), "{log}");
    assert_eq!(
        runs(&t).iter().filter(|(s, _)| s == "failure").count(),
        1,
        "{:?}",
        runs(&t)
    );
    assert_clean_messages(&t);
}
