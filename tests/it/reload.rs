//! SIGHUP: a root added to the configuration is watched and synced without a restart;
//! an invalid configuration is refused and the running one stays.

use crate::support::daemon::{Tree, pattern, terminate, wait_for};
use crate::support::emulator::sha256_hex;

fn synced(t: &Tree, external_id: &str, bytes: &[u8]) -> bool {
    t.cdf.emu.files().iter().any(|f| {
        f.external_id.as_deref() == Some(external_id)
            && f.uploaded
            && f.sha256.as_deref() == Some(sha256_hex(bytes).as_str())
    })
}

fn hangup(daemon: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &daemon.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_root_and_an_invalid_config_is_refused() {
    let t = Tree::new("").await;
    let first = pattern(500, 1);
    t.write("a.txt", &first);
    let daemon = t.start_daemon(0);
    wait_for(30, "the first root's file", || {
        synced(&t, "gw:it:/a.txt", &first)
    })
    .await;

    // A second root, with a file already in it.
    let second_dir = t.dir.path().join("second");
    std::fs::create_dir_all(&second_dir).expect("mkdir");
    let before = pattern(700, 2);
    std::fs::write(second_dir.join("before.txt"), &before).expect("write");
    let text = std::fs::read_to_string(&t.config).expect("config");
    let added = format!(
        "[[roots]]\nid = \"second\"\npath = \"{}\"\nexternal_id_prefix = \"gw:\"\n[sync]",
        second_dir.display()
    );
    std::fs::write(&t.config, text.replacen("[sync]", &added, 1)).expect("config");
    hangup(&daemon);
    wait_for(30, "the reload", || {
        t.daemon_log(0).contains("configuration reloaded")
    })
    .await;
    wait_for(30, "the new root's existing file", || {
        synced(&t, "gw:second:/before.txt", &before)
    })
    .await;
    let after = pattern(900, 3);
    std::fs::write(second_dir.join("after.txt"), &after).expect("write");
    wait_for(
        30,
        "a file written to the new root after the reload",
        || synced(&t, "gw:second:/after.txt", &after),
    )
    .await;

    // A broken file is refused; both roots keep syncing.
    let good = std::fs::read_to_string(&t.config).expect("config");
    std::fs::write(&t.config, "[cdf\nnot toml").expect("config");
    hangup(&daemon);
    wait_for(30, "the refusal", || {
        t.daemon_log(0).contains("configuration reload refused")
    })
    .await;
    let later = pattern(300, 4);
    t.write("later.txt", &later);
    std::fs::write(second_dir.join("later.txt"), &later).expect("write");
    wait_for(30, "both roots still syncing", || {
        synced(&t, "gw:it:/later.txt", &later) && synced(&t, "gw:second:/later.txt", &later)
    })
    .await;
    std::fs::write(&t.config, good).expect("config");
    assert!(terminate(daemon).await.success(), "{}", t.daemon_log(0));
    let log = t.daemon_log(0);
    assert!(log.contains("ERROR"), "{log}");
    assert_eq!(t.cdf.emu.files().len(), 5, "{:#?}", t.cdf.emu.files());
}
