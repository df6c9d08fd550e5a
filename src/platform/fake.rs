//! In-memory [`Platform`] for host tests: scripted upstream answers, recorded requests, instant timers.

use super::{Background, FetchError, KvWriter, Platform, Timer, UpstreamRequest, UpstreamResponse};
use crate::http::{Headers, StreamError};
use futures_util::stream;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// One scripted body piece.
#[derive(Debug, Clone)]
pub enum Piece {
    Data(Vec<u8>),
    Fail(String),
    /// The body stops producing anything, forever.
    Stall,
}

#[derive(Debug, Clone)]
pub enum Scripted {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<Piece>,
    },
    ConnectError(String),
    /// Never answers.
    Hang,
}

impl Scripted {
    pub fn json(status: u16, body: &str) -> Self {
        Scripted::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: vec![Piece::Data(body.as_bytes().to_vec())],
        }
    }

    pub fn sse(chunks: &[&str]) -> Self {
        Scripted::Respond {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: chunks
                .iter()
                .map(|c| Piece::Data(c.as_bytes().to_vec()))
                .collect(),
        }
    }
}

/// The fake clock: 2015-08-30T12:36:00Z, the instant of AWS's published SigV4 examples.
pub const FAKE_NOW_MS: u64 = 1_440_938_160_000;

/// Timers fire at once: any wait that is not already satisfied times out.
#[derive(Default)]
pub struct FakePlatform {
    pub script: RefCell<VecDeque<Scripted>>,
    pub requests: RefCell<Vec<UpstreamRequest>>,
    pub secrets: HashMap<String, String>,
    pub kv: Rc<RefCell<HashMap<String, String>>>,
    pub windows: RefCell<HashMap<String, crate::ratelimit::Window>>,
    /// Milliseconds added to the fake clock.
    pub clock: std::cell::Cell<u64>,
    pub background: Rc<RefCell<Vec<super::Work>>>,
}

impl FakePlatform {
    pub fn new(script: impl IntoIterator<Item = Scripted>) -> Self {
        FakePlatform {
            script: RefCell::new(script.into_iter().collect()),
            ..Default::default()
        }
    }

    pub fn with_secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Runs the queued background work; says whether all of it finished (fake bodies never wait, so it does).
    pub fn run_background(&self) -> bool {
        let mut all = true;
        loop {
            let queued = std::mem::take(&mut *self.background.borrow_mut());
            if queued.is_empty() {
                return all;
            }
            for fut in queued {
                all &= futures_util::FutureExt::now_or_never(fut).is_some();
            }
        }
    }
}

impl Platform for FakePlatform {
    async fn fetch(&self, req: UpstreamRequest) -> Result<UpstreamResponse, FetchError> {
        self.requests.borrow_mut().push(req);
        let next = self.script.borrow_mut().pop_front();
        match next.expect("FakePlatform: no scripted response left") {
            Scripted::ConnectError(e) => Err(FetchError(e)),
            Scripted::Hang => std::future::pending().await,
            Scripted::Respond {
                status,
                headers,
                body,
            } => {
                let pieces = body.into_iter().map(|p| match p {
                    Piece::Data(d) => Some(Ok(d)),
                    Piece::Fail(e) => Some(Err(StreamError(e))),
                    Piece::Stall => None,
                });
                let body = stream::unfold(pieces, |mut it| async move {
                    match it.next() {
                        None => None,
                        Some(Some(item)) => Some((item, it)),
                        Some(None) => std::future::pending().await,
                    }
                });
                Ok(UpstreamResponse {
                    status,
                    headers: headers.into_iter().collect::<Headers>(),
                    body: Box::pin(body),
                })
            }
        }
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }

    async fn sleep(&self, _ms: u64) {}

    fn now_ms(&self) -> u64 {
        FAKE_NOW_MS + self.clock.get()
    }

    async fn kv_get(&self, key: &str) -> Option<String> {
        self.kv.borrow().get(key).cloned()
    }

    async fn rate_check(
        &self,
        key: &str,
        window_ms: u64,
        rpm: Option<u32>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<crate::ratelimit::Decision, String> {
        let now = self.now_ms();
        let mut windows = self.windows.borrow_mut();
        let w = windows.entry(key.to_owned()).or_default();
        let d = w.check(now, window_ms, rpm, tpm);
        if d == crate::ratelimit::Decision::Allowed {
            w.spend(now, window_ms, tokens);
        }
        Ok(d)
    }

    fn timer(&self) -> Timer {
        Rc::new(|_ms| Box::pin(std::future::ready(())))
    }

    /// Background work is queued; [`FakePlatform::run_background`] runs it.
    fn background(&self) -> Background {
        let queue = self.background.clone();
        Rc::new(move |fut| queue.borrow_mut().push(fut))
    }

    fn kv_writer(&self) -> KvWriter {
        let kv = self.kv.clone();
        Rc::new(move |key, value, _ttl_s, _metadata| {
            kv.borrow_mut().insert(key, value);
        })
    }
}
