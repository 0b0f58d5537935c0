//! The fault "weather" of a chaos run, driven by its own seeded random source while the
//! daemon is killed and restarted: a steady drizzle of API 500/503s, storage 500/503s,
//! PUT connections cut mid-body and lost replies (on a slow uplink, so that kills land
//! mid-part), 429 bursts that alternate with and without `Retry-After`, and one outage
//! (connections refused, open ones cut) once the kill loop reaches a given cycle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cdf_syncd::emulator::{Emulator, Faults};
use tokio_util::sync::CancellationToken;

/// Bandwidth of each upload PUT: a 64 KiB part takes half a second.
pub const PUT_RATE: u64 = 128 * 1024;

/// What the weather did, for the closing figures.
#[derive(Debug, Default)]
pub struct Report {
    pub bursts: usize,
    pub bursts_with_retry_after: usize,
    pub outages: usize,
    pub outage_cycle: Option<usize>,
    pub outage_for: Duration,
}

/// The steady faults between bursts.
pub fn drizzle() -> Faults {
    Faults {
        api_500: 0.02,
        api_503: 0.08,
        put_500: 0.01,
        put_503: 0.02,
        drop_connection: 0.05,
        lost_response: 0.03,
        put_bytes_per_sec: Some(PUT_RATE),
        ..Faults::default()
    }
}

/// A 429 burst on top of the drizzle.
fn burst(retry_after: bool) -> Faults {
    Faults {
        api_429: 0.8,
        api_429_retry_after: retry_after.then_some(1),
        put_429: 0.5,
        ..drizzle()
    }
}

/// Runs until `stop`; the outage comes once `cycle` reaches `outage_at`. Leaves the
/// emulator up and without faults.
pub async fn run(
    emu: &Emulator,
    seed: u64,
    cycle: &AtomicUsize,
    outage_at: usize,
    stop: CancellationToken,
) -> Report {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed_0f0a);
    let mut report = Report::default();
    let mut retry_after = rng.bool();
    let pause =
        |ms: std::ops::Range<u64>, rng: &mut fastrand::Rng| Duration::from_millis(rng.u64(ms));
    loop {
        emu.set_faults(drizzle());
        if !wait(&stop, pause(1000..3500, &mut rng)).await {
            break;
        }
        if report.outages == 0 && cycle.load(Ordering::Relaxed) >= outage_at {
            let down = pause(1000..2500, &mut rng);
            report.outages += 1;
            report.outage_cycle = Some(cycle.load(Ordering::Relaxed));
            report.outage_for = down;
            emu.set_down(true);
            let go_on = wait(&stop, down).await;
            emu.set_down(false);
            if !go_on {
                break;
            }
            continue;
        }
        emu.set_faults(burst(retry_after));
        report.bursts += 1;
        report.bursts_with_retry_after += usize::from(retry_after);
        retry_after = !retry_after;
        if !wait(&stop, pause(300..1200, &mut rng)).await {
            break;
        }
    }
    emu.set_down(false);
    emu.set_faults(Faults::default());
    report
}

/// Sleeps `d` unless stopped first; false when stopped.
async fn wait(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = stop.cancelled() => false,
    }
}
