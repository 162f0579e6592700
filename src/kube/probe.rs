//! The probe thread: while anyone sleeps out a backoff, it asks the API
//! server `GET /version` every 3 to 4 s, and wakes every sleeper as soon as
//! one answer comes back (see [`super::backoff`] for why and the bound).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::backoff::{ProbeSchedule, ProbeStep, XorShift};
use super::client::ApiClient;
use crate::stop::Stop;

/// The longest idle wait for a sleeper; a new sleeper or stop ends it sooner.
const IDLE_WAIT: Duration = Duration::from_secs(60);

/// Starts the probe thread; it ends on `stop`.
pub fn spawn(client: Arc<ApiClient>, stop: Stop) -> std::io::Result<JoinHandle<()>> {
    client.recovery().wake_on(&stop);
    std::thread::Builder::new().name("api-probe".into()).spawn(move || run(&client, &stop))
}

fn run(client: &ApiClient, stop: &Stop) {
    let recovery = client.recovery();
    let origin = Instant::now();
    let mut schedule = ProbeSchedule::new(XorShift::from_time(0x7072_6f62));
    while !stop.is_stopped() {
        match schedule.step(origin.elapsed(), recovery.sleeping() > 0) {
            ProbeStep::Idle => recovery.wait_for_sleepers(IDLE_WAIT, stop),
            ProbeStep::WaitUntil(at) => {
                stop.sleep(at.saturating_sub(origin.elapsed()));
            }
            ProbeStep::Probe => {
                let result = client.probe();
                schedule.probed(origin.elapsed());
                match result {
                    Ok(()) => {
                        let woken = recovery.wake_all();
                        if woken > 0 {
                            log::info!("the API server answers again: {woken} backing-off watchers retry now");
                        }
                    }
                    Err(error) => log::debug!("API probe failed: {error}"),
                }
            }
        }
    }
}
