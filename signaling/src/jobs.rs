//! The one runner of background jobs (the idea of garage's `Worker`): every job has a name,
//! reports its state, runs and last error (shown in `/metrics`), and stops on the server's
//! shutdown. Jobs stop in two phases: first the [`Phase::Serve`] jobs (the engine, sweeps,
//! clean-ups), then the [`Phase::Drain`] jobs (the recording store), which finish the work
//! the first phase handed them before they stop.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// When a job stops at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Stopped first: jobs that serve requests or produce work.
    Serve,
    /// Stopped once every `Serve` job has stopped: jobs that store what those produced.
    Drain,
}

/// What a job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Working now (a long-running job, or a periodic one in a run).
    Running,
    /// A periodic job between runs.
    Idle,
    /// Stopped at shutdown, or finished.
    Stopped,
    /// Ended with an error (not restarted: the log and `/metrics` say why).
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Idle => "idle",
            JobState::Stopped => "stopped",
            JobState::Failed => "failed",
        }
    }
}

/// A job's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub state: JobState,
    /// Runs of a periodic job (1 for a long-running one).
    pub runs: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    /// When the last error happened (Unix ms).
    pub last_error_at_ms: Option<u64>,
}

/// What a job gets: the signal to stop, and a way to report.
#[derive(Clone)]
pub struct JobContext {
    name: &'static str,
    stop: CancellationToken,
    statuses: Arc<Mutex<BTreeMap<&'static str, JobStatus>>>,
}

impl JobContext {
    /// Resolves when the job must stop.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn update(&self, f: impl FnOnce(&mut JobStatus)) {
        let mut map = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(self.name) {
            f(s);
        }
    }

    /// Record an error the job recovered from (it keeps running).
    pub fn report_error(&self, e: &dyn std::fmt::Display) {
        let message = e.to_string();
        tracing::warn!(job = self.name, error = %message, "background job error");
        self.update(|s| {
            s.failures += 1;
            s.last_error = Some(message);
            s.last_error_at_ms = Some(crate::now_ms());
        });
    }
}

struct Running {
    name: &'static str,
    phase: Phase,
    handle: JoinHandle<()>,
}

/// The runner. Cheap to clone.
#[derive(Clone, Default)]
pub struct Jobs {
    serve: CancellationToken,
    drain: CancellationToken,
    statuses: Arc<Mutex<BTreeMap<&'static str, JobStatus>>>,
    running: Arc<Mutex<Vec<Running>>>,
}

impl Jobs {
    pub fn new() -> Jobs {
        Jobs::default()
    }

    fn context(&self, name: &'static str, phase: Phase) -> JobContext {
        let stop = match phase {
            Phase::Serve => self.serve.clone(),
            Phase::Drain => self.drain.clone(),
        };
        let status =
            JobStatus { state: JobState::Running, runs: 0, failures: 0, last_error: None, last_error_at_ms: None };
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).insert(name, status);
        JobContext { name, stop, statuses: self.statuses.clone() }
    }

    /// Start a long-running job. It must return soon after `ctx.stopped()` resolves; an
    /// `Err` marks it failed.
    pub fn spawn<F, Fut>(&self, name: &'static str, phase: Phase, f: F)
    where
        F: FnOnce(JobContext) -> Fut,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        let ctx = self.context(name, phase);
        ctx.update(|s| s.runs = 1);
        let fut = f(ctx.clone());
        let handle = tokio::spawn(async move {
            let result = fut.await;
            ctx.update(|s| match result {
                Ok(()) => s.state = JobState::Stopped,
                Err(e) => {
                    tracing::error!(job = ctx.name, error = %e, "background job failed");
                    s.state = JobState::Failed;
                    s.failures += 1;
                    s.last_error = Some(e.to_string());
                    s.last_error_at_ms = Some(crate::now_ms());
                }
            });
        });
        self.running.lock().unwrap_or_else(|e| e.into_inner()).push(Running { name, phase, handle });
    }

    /// Start a periodic job: `run` now and then every `every`, until shutdown. A failed run is
    /// reported and the next one happens on time.
    pub fn every<F, Fut>(&self, name: &'static str, every: Duration, mut run: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.spawn(name, Phase::Serve, move |ctx| async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ctx.stopped() => return Ok(()),
                    _ = ticks.tick() => {}
                }
                ctx.update(|s| {
                    s.state = JobState::Running;
                    s.runs += 1;
                });
                // A run in progress is finished, unless it outlasts the stop.
                let result = tokio::select! {
                    r = run() => r,
                    _ = ctx.stopped() => return Ok(()),
                };
                if let Err(e) = result {
                    ctx.report_error(&e);
                }
                ctx.update(|s| s.state = JobState::Idle);
            }
        });
    }

    /// Every job's report, by name.
    pub fn statuses(&self) -> Vec<(&'static str, JobStatus)> {
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Stop every job, phase by phase, and return when they have stopped (a job that does
    /// not stop within `grace` is aborted, and says so in the log).
    pub async fn shutdown(&self, grace: Duration) {
        for (phase, token) in [(Phase::Serve, &self.serve), (Phase::Drain, &self.drain)] {
            token.cancel();
            let jobs: Vec<Running> = {
                let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                let (these, rest): (Vec<Running>, Vec<Running>) = running.drain(..).partition(|r| r.phase == phase);
                *running = rest;
                these
            };
            for job in jobs {
                let abort = job.handle.abort_handle();
                if tokio::time::timeout(grace, job.handle).await.is_err() {
                    tracing::error!(job = job.name, "background job did not stop in time; aborted");
                    abort.abort();
                    let mut map = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(s) = map.get_mut(job.name) {
                        s.state = JobState::Stopped;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn jobs_report_and_stop_in_phases() {
        let jobs = Jobs::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        jobs.spawn("drainer", Phase::Drain, move |ctx| async move {
            ctx.stopped().await;
            o.lock().unwrap().push("drainer");
            Ok(())
        });
        let o = order.clone();
        jobs.spawn("server", Phase::Serve, move |ctx| async move {
            ctx.stopped().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            o.lock().unwrap().push("server");
            Ok(())
        });
        jobs.spawn("broken", Phase::Serve, |_| async { Err(Error::Tool("no disk".into())) });
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        jobs.every("ticker", Duration::from_millis(10), move || {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(Error::Tool("first run fails".into()));
                }
                Ok(())
            }
        });
        tokio::time::sleep(Duration::from_millis(60)).await;
        let st: BTreeMap<_, _> = jobs.statuses().into_iter().collect();
        assert_eq!(st["broken"].state, JobState::Failed);
        assert_eq!(st["broken"].last_error.as_deref(), Some("no disk"));
        assert_eq!(st["server"].state, JobState::Running);
        assert!(st["ticker"].runs >= 2, "{:?}", st["ticker"]);
        assert_eq!(st["ticker"].failures, 1);
        assert_eq!(st["ticker"].last_error.as_deref(), Some("first run fails"));

        jobs.shutdown(Duration::from_secs(5)).await;
        // The serving job stopped before the draining one was told to.
        assert_eq!(*order.lock().unwrap(), ["server", "drainer"]);
        let st: BTreeMap<_, _> = jobs.statuses().into_iter().collect();
        for name in ["server", "drainer", "ticker"] {
            assert_eq!(st[name].state, JobState::Stopped, "{name}");
        }
        let after = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(runs.load(Ordering::SeqCst), after, "a stopped job ran again");
    }

    #[tokio::test]
    async fn a_job_that_does_not_stop_is_aborted() {
        let jobs = Jobs::new();
        jobs.spawn("stubborn", Phase::Serve, |_| async {
            std::future::pending::<()>().await;
            Ok(())
        });
        tokio::time::timeout(Duration::from_secs(5), jobs.shutdown(Duration::from_millis(50))).await.unwrap();
        assert_eq!(jobs.statuses()[0].1.state, JobState::Stopped);
    }
}
