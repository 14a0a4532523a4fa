//! The built-in live source of `starling demo`: frames from [`starling_demo_source`]
//! published straight into the hub on a real-time schedule, as an encoder would.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use starling_demo_source::{DemoConfig, DemoSource};
use starling_hub::Hub;
use starling_media::MediaEvent;
use tracing::info;

pub struct DemoTask {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DemoTask {
    fn drop(&mut self) {
        // Ends the publish (the task owns the publisher): viewers see the stream end.
        self.task.abort();
    }
}

impl DemoTask {
    pub fn start(hub: Arc<Hub>, channel: &str) -> anyhow::Result<Self> {
        let mut source = DemoSource::new(DemoConfig::default()).context("demo source")?;
        // Takeover: the demo yields to nobody, and a restart replaces itself.
        let publisher = hub
            .publish(channel, true)
            .context("publishing the demo channel")?;
        let fps = source.config().fps;
        info!(channel, fps, "demo source publishing");
        let task = tokio::spawn(async move {
            publisher.send(MediaEvent::Stream(source.stream()));
            let start = tokio::time::Instant::now();
            let mut n: u64 = 0;
            loop {
                // Scheduled from a fixed start, so rounding never accumulates into drift.
                let due = start + Duration::from_nanos(n * 1_000_000_000 / u64::from(fps));
                tokio::time::sleep_until(due).await;
                for frame in source.next(SystemTime::now()) {
                    if !publisher.send(MediaEvent::Frame(frame)) {
                        return;
                    }
                }
                n += 1;
            }
        });
        Ok(Self { task })
    }
}
