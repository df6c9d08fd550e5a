//! In-memory [`Platform`] for host tests: scripted upstream answers, recorded requests, and a virtual clock.
//! Timers fire when the clock reaches them; [`FakePlatform::run`] drives a future and, whenever nothing else can
//! make progress, moves the clock to the next timer, so a test of hedging or deadlines takes no real time and
//! gives the same result every run. Compiled for tests only, never into the worker.

use super::{Background, FetchError, KvWriter, Platform, Timer, UpstreamRequest, UpstreamResponse};
use crate::http::{Headers, StreamError};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use futures_util::stream;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// One scripted body piece.
#[derive(Debug, Clone)]
pub enum Piece {
    Data(Vec<u8>),
    Fail(String),
    /// Nothing for this many milliseconds of the virtual clock.
    Wait(u64),
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
    /// The scripted answer, after this many milliseconds of the virtual clock.
    After(u64, Box<Scripted>),
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

    /// This answer, `ms` later.
    pub fn after(self, ms: u64) -> Self {
        Scripted::After(ms, Box::new(self))
    }
}

/// The fake clock's start: 2015-08-30T12:36:00Z, the instant of AWS's published SigV4 examples.
pub const FAKE_NOW_MS: u64 = 1_440_938_160_000;

/// The virtual clock: milliseconds since [`FAKE_NOW_MS`], and the timers waiting on it.
#[derive(Default)]
pub struct Clock {
    now: Cell<u64>,
    timers: RefCell<Vec<(u64, Waker)>>,
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        FAKE_NOW_MS + self.now.get()
    }

    /// Moves the clock forward by `ms`, waking every timer that is due.
    pub fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
        self.wake_due();
    }

    fn wake_due(&self) {
        let now = self.now.get();
        let due: Vec<Waker> = {
            let mut timers = self.timers.borrow_mut();
            let (due, left): (Vec<_>, Vec<_>) = timers.drain(..).partition(|(at, _)| *at <= now);
            *timers = left;
            due.into_iter().map(|(_, w)| w).collect()
        };
        due.into_iter().for_each(Waker::wake);
    }

    /// Moves the clock to the earliest pending timer; false when none is pending.
    fn to_next_timer(&self) -> bool {
        let next = self.timers.borrow().iter().map(|(at, _)| *at).min();
        match next {
            Some(at) => {
                self.now.set(self.now.get().max(at));
                self.wake_due();
                true
            }
            None => false,
        }
    }

    /// A future that is ready once the clock reaches `now + ms`.
    pub fn sleep(self: &Rc<Self>, ms: u64) -> Sleep {
        Sleep {
            clock: self.clone(),
            at: self.now.get() + ms,
        }
    }
}

pub struct Sleep {
    clock: Rc<Clock>,
    at: u64,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now.get() >= self.at {
            return Poll::Ready(());
        }
        self.clock
            .timers
            .borrow_mut()
            .push((self.at, cx.waker().clone()));
        Poll::Pending
    }
}

/// A shadow's daily cap in a ledger object: the object, the day, the primary and the shadow.
pub type ShadowCap = (String, String, String, String);

#[derive(Default)]
pub struct FakePlatform {
    pub script: RefCell<VecDeque<Scripted>>,
    /// Answers for requests whose URL starts with a prefix, ahead of `script`.
    pub by_url: RefCell<Vec<(String, VecDeque<Scripted>)>>,
    pub requests: RefCell<Vec<UpstreamRequest>>,
    /// When each request in `requests` was sent, in milliseconds of the virtual clock.
    pub sent_at: RefCell<Vec<u64>>,
    pub secrets: HashMap<String, String>,
    pub kv: Rc<RefCell<HashMap<String, String>>>,
    pub windows: Rc<RefCell<HashMap<String, crate::ratelimit::Window>>>,
    /// How many times a limiter object was asked for a slice.
    pub lease_asks: Rc<Cell<u32>>,
    /// The spend ledger's entries as written, by key, with what each reserved of the budgets.
    pub ledger: Rc<RefCell<Vec<(String, crate::ledger::Entry, crate::ledger::Reserved)>>>,
    /// Data points written to Analytics Engine, when a dataset is bound (`with_analytics`).
    pub analytics: Option<Rc<RefCell<Vec<crate::analytics::DataPoint>>>>,
    /// Shadow calls' and experiments' outcomes as the ledger objects keep them, by ledger object.
    pub outcomes: Rc<RefCell<Vec<(String, crate::shadow::StoredOutcome)>>>,
    /// What each shadow spent of its cap, by ledger object, day, primary and shadow, USD.
    pub shadow_spend: Rc<RefCell<HashMap<ShadowCap, f64>>>,
    /// Each key's budget book, as its ledger object would keep it.
    pub budgets: Rc<RefCell<HashMap<String, crate::ledger::BudgetBook>>>,
    pub clock: Rc<Clock>,
    pub background: Rc<RefCell<Vec<super::Work>>>,
    /// Log lines, as the runtime's console would print them.
    pub logs: Rc<RefCell<Vec<String>>>,
    /// Indices (into `requests`) of provider fetches dropped before their answer was read to the end.
    pub cancelled: Rc<RefCell<Vec<usize>>>,
}

impl FakePlatform {
    pub fn new(script: impl IntoIterator<Item = Scripted>) -> Self {
        FakePlatform {
            script: RefCell::new(script.into_iter().collect()),
            ..Default::default()
        }
    }

    /// Binds an Analytics Engine dataset that keeps what is written to it.
    pub fn with_analytics(mut self) -> Self {
        self.analytics = Some(Rc::default());
        self
    }

    pub fn with_secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Requests to URLs starting with `prefix` get these answers, in order.
    pub fn answer(&self, prefix: &str, answers: impl IntoIterator<Item = Scripted>) {
        self.by_url
            .borrow_mut()
            .push((prefix.to_owned(), answers.into_iter().collect()));
    }

    /// Milliseconds the virtual clock has moved.
    pub fn elapsed_ms(&self) -> u64 {
        self.clock.now.get()
    }

    /// Runs `fut` to its end with the background work it queues, moving the virtual clock whenever nothing can
    /// make progress without it. Panics if `fut` waits on something no timer will ever satisfy.
    pub fn run<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = core::pin::pin!(fut);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            self.poll_background(&mut cx);
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            assert!(
                self.clock.to_next_timer(),
                "FakePlatform::run: the future waits on something no timer will end"
            );
        }
    }

    /// What the ledger entries written so far cost in all, USD.
    pub fn ledger_cost_usd(&self) -> f64 {
        self.ledger
            .borrow()
            .iter()
            .map(|(_, e, _)| e.spend.cost_usd)
            .sum()
    }

    /// Runs `answer` (the gateway answering a request) to its response, and reads the response's body whole.
    pub fn run_collected(
        &self,
        answer: impl Future<Output = crate::http::Response>,
    ) -> (crate::http::Response, Vec<u8>) {
        self.run(async {
            let mut resp = answer.await;
            let body = std::mem::replace(&mut resp.body, crate::http::Body::Empty)
                .collect()
                .await
                .unwrap();
            (resp, body)
        })
    }

    /// Runs the queued background work as far as it goes, moving the clock as needed; says whether all of it
    /// finished.
    pub fn run_background(&self) -> bool {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        loop {
            if self.poll_background(&mut cx) {
                return true;
            }
            if !self.clock.to_next_timer() {
                // Work queued by work that just ran gets its turn before giving up.
                if self.poll_background(&mut cx) {
                    return true;
                }
                return false;
            }
        }
    }

    /// Polls the queued background work, including work queued meanwhile, until a pass queues nothing new;
    /// true when none is left.
    fn poll_background(&self, cx: &mut Context<'_>) -> bool {
        loop {
            let mut queued = std::mem::take(&mut *self.background.borrow_mut());
            queued.retain_mut(|w| w.as_mut().poll(cx).is_pending());
            let mut all = self.background.borrow_mut();
            let added = !all.is_empty();
            queued.append(&mut all);
            *all = queued;
            if !added || all.is_empty() {
                return all.is_empty();
            }
        }
    }

    /// The request records logged so far, parsed back.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.logs
            .borrow()
            .iter()
            .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l.as_bytes()).ok())
            .filter(|v| v["meridian"] == "request")
            .collect()
    }
}

/// Counts a provider fetch as cancelled when its body is dropped before the end.
struct Watched<S> {
    inner: S,
    ended: bool,
    cancel_on_drop: bool,
    index: usize,
    cancelled: Rc<RefCell<Vec<usize>>>,
}

impl<S: futures_util::Stream + Unpin> futures_util::Stream for Watched<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let r = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(None) = r {
            self.ended = true;
        }
        r
    }
}

impl<S> Drop for Watched<S> {
    fn drop(&mut self) {
        if !self.ended && self.cancel_on_drop {
            self.cancelled.borrow_mut().push(self.index);
        }
    }
}

impl Platform for FakePlatform {
    async fn fetch(&self, req: UpstreamRequest) -> Result<UpstreamResponse, FetchError> {
        let cancel_on_drop = req.cancel_on_drop;
        let index = self.requests.borrow().len();
        self.requests.borrow_mut().push(req);
        self.sent_at.borrow_mut().push(self.elapsed_ms());
        let url = self.requests.borrow()[index].url.clone();
        let routed = self
            .by_url
            .borrow_mut()
            .iter_mut()
            .find(|(prefix, _)| url.starts_with(prefix.as_str()))
            .and_then(|(_, answers)| answers.pop_front());
        let mut next = routed
            .or_else(|| self.script.borrow_mut().pop_front())
            .expect("FakePlatform: no scripted response left");
        // A fetch dropped while waiting for its headers is cancelled too.
        let mut waiting = Watched {
            inner: stream::empty::<()>(),
            ended: false,
            cancel_on_drop,
            index,
            cancelled: self.cancelled.clone(),
        };
        while let Scripted::After(ms, then) = next {
            self.clock.sleep(ms).await;
            next = *then;
        }
        if matches!(next, Scripted::Hang) {
            std::future::pending::<()>().await;
        }
        waiting.ended = true;
        match next {
            Scripted::After(..) | Scripted::Hang => unreachable!("waited for above"),
            Scripted::ConnectError(e) => Err(FetchError(e)),
            Scripted::Respond {
                status,
                headers,
                body,
            } => {
                let clock = self.clock.clone();
                let body = stream::unfold(body.into_iter(), move |mut it| {
                    let clock = clock.clone();
                    async move {
                        loop {
                            match it.next()? {
                                Piece::Data(d) => return Some((Ok(d), it)),
                                Piece::Fail(e) => return Some((Err(StreamError(e)), it)),
                                Piece::Wait(ms) => clock.sleep(ms).await,
                                Piece::Stall => std::future::pending().await,
                            }
                        }
                    }
                });
                Ok(UpstreamResponse {
                    status,
                    headers: headers.into_iter().collect::<Headers>(),
                    body: Box::pin(Watched {
                        inner: Box::pin(body),
                        ended: false,
                        cancel_on_drop,
                        index,
                        cancelled: self.cancelled.clone(),
                    }),
                })
            }
        }
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }

    async fn sleep(&self, ms: u64) {
        self.clock.sleep(ms).await
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn clock(&self) -> super::Clock {
        let clock = self.clock.clone();
        Rc::new(move || clock.now_ms())
    }

    fn logger(&self) -> super::Logger {
        let logs = self.logs.clone();
        Rc::new(move |line: &str| logs.borrow_mut().push(line.to_owned()))
    }

    async fn kv_get(&self, key: &str) -> Option<String> {
        self.kv.borrow().get(key).cloned()
    }

    async fn kv_delete(&self, key: &str) -> bool {
        self.kv.borrow_mut().remove(key);
        true
    }

    async fn rate_check(
        &self,
        key: &str,
        window_ms: u64,
        rpm: Option<u32>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<(crate::ratelimit::Decision, crate::ratelimit::Standing), String> {
        let now = self.now_ms();
        let mut windows = self.windows.borrow_mut();
        let w = windows.entry(key.to_owned()).or_default();
        let d = w.check(now, window_ms, rpm, tpm);
        if d == crate::ratelimit::Decision::Allowed {
            w.spend(now, window_ms, tokens as i64);
        }
        Ok((d, w.standing(now, window_ms, (rpm, tpm))))
    }

    fn rate_leaser(&self) -> super::RateLeaser {
        let windows = self.windows.clone();
        let clock = self.clock.clone();
        let asks = self.lease_asks.clone();
        Rc::new(move |ask: super::LeaseAsk| {
            let windows = windows.clone();
            let now = clock.now_ms();
            asks.set(asks.get() + 1);
            Box::pin(async move {
                let mut windows = windows.borrow_mut();
                let w = windows.entry(ask.key).or_default();
                if let Some((end, requests, tokens)) = ask.want.give_back {
                    w.give_back(now, ask.window_ms, end, requests, tokens);
                }
                Ok(w.grant(
                    now,
                    ask.window_ms,
                    (ask.rpm, ask.tpm),
                    (ask.want.requests, ask.want.tokens),
                ))
            })
        })
    }

    fn analytics(&self) -> Option<super::AnalyticsWriter> {
        let points = self.analytics.clone()?;
        Some(Rc::new(move |p: &crate::analytics::DataPoint| {
            points.borrow_mut().push(p.clone())
        }))
    }

    fn ledger_writer(&self) -> super::LedgerWriter {
        let (ledger, budgets, clock) = (
            self.ledger.clone(),
            self.budgets.clone(),
            self.clock.clone(),
        );
        let (outcomes, shadow_spend) = (self.outcomes.clone(), self.shadow_spend.clone());
        Rc::new(
            move |key: String, entries: Vec<(crate::ledger::Entry, crate::ledger::Reserved)>| {
                let (ledger, budgets, now) = (ledger.clone(), budgets.clone(), clock.now_ms());
                let (outcomes, shadow_spend) = (outcomes.clone(), shadow_spend.clone());
                Box::pin(async move {
                    for (mut entry, reserved) in entries {
                        for o in std::mem::take(&mut entry.outcomes) {
                            if let Some((primary, shadow, usd)) = o.cap_settlement() {
                                let id = (
                                    key.clone(),
                                    entry.day.clone(),
                                    primary.into(),
                                    shadow.into(),
                                );
                                *shadow_spend.borrow_mut().entry(id).or_default() += usd;
                            }
                            outcomes.borrow_mut().push((
                                key.clone(),
                                crate::shadow::StoredOutcome {
                                    day: entry.day.clone(),
                                    key: String::new(),
                                    outcome: o,
                                },
                            ));
                        }
                        let cost = crate::ledger::micro(entry.spend.cost_usd);
                        let mut budgets = budgets.borrow_mut();
                        if let Some(b) = budgets.get_mut(&key) {
                            b.spent(now, &entry.day, cost, reserved.key);
                        }
                        if let Some(b) = budgets.get_mut(&format!("{key}#{}", entry.model)) {
                            b.spent(now, &entry.day, cost, reserved.model);
                        }
                        // An entry of nothing only gives back what its request reserved.
                        if entry.spend.requests > 0 {
                            ledger.borrow_mut().push((key.clone(), entry, reserved));
                        }
                    }
                })
            },
        )
    }

    async fn shadow_reserve(&self, ledger: &str, ask: super::ShadowAsk) -> Result<bool, String> {
        let id = (ledger.to_owned(), ask.day, ask.primary, ask.shadow);
        let mut spend = self.shadow_spend.borrow_mut();
        let spent = spend.entry(id).or_default();
        let granted = *spent + ask.usd <= ask.max_usd;
        if granted {
            *spent += ask.usd;
        }
        Ok(granted)
    }

    async fn ledger_outcomes(
        &self,
        ledger: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::shadow::StoredOutcome>, String> {
        Ok(self
            .outcomes
            .borrow()
            .iter()
            .filter(|(l, o)| l == ledger && o.day.as_str() >= from && o.day.as_str() <= to)
            .map(|(_, o)| o.clone())
            .collect())
    }

    async fn ledger_rows(
        &self,
        key: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::ledger::Row>, String> {
        let mut rows: Vec<crate::ledger::Row> = Vec::new();
        for (k, e, _) in self.ledger.borrow().iter() {
            if k != key || e.day.as_str() < from || e.day.as_str() > to {
                continue;
            }
            match rows
                .iter_mut()
                .find(|r| (&r.day, &r.model, &r.principal) == (&e.day, &e.model, &e.principal))
            {
                Some(r) => r.spend.add(&e.spend),
                None => rows.push(crate::ledger::Row {
                    day: e.day.clone(),
                    model: e.model.clone(),
                    principal: e.principal.clone(),
                    spend: e.spend.clone(),
                }),
            }
        }
        rows.sort_by(|a, b| {
            (&a.day, &a.model, &a.principal).cmp(&(&b.day, &b.model, &b.principal))
        });
        Ok(rows)
    }

    fn budget_leaser(&self) -> super::RateLeaser {
        let (ledger, budgets, clock, asks) = (
            self.ledger.clone(),
            self.budgets.clone(),
            self.clock.clone(),
            self.lease_asks.clone(),
        );
        Rc::new(move |ask: super::LeaseAsk| {
            let (ledger, budgets, now) = (ledger.clone(), budgets.clone(), clock.now_ms());
            asks.set(asks.get() + 1);
            Box::pin(async move {
                let mut budgets = budgets.borrow_mut();
                let today = crate::ledger::day_of(now);
                let book_key = match &ask.scope {
                    None => ask.key.clone(),
                    Some(m) => format!("{}#{m}", ask.key),
                };
                if budgets.get(&book_key).is_some_and(|b| b.day != today) {
                    budgets.remove(&book_key);
                }
                let book = budgets.entry(book_key).or_insert_with(|| {
                    // What the ledger says was spent today and earlier this month (on the scope's model).
                    let month = crate::ledger::month_start(now);
                    // Summed in dollars, then in micro-dollars, as the object's SQL sums do.
                    let (mut day, mut before) = (0.0, 0.0);
                    let in_scope = |k: &str, e: &crate::ledger::Entry| {
                        k == ask.key && ask.scope.as_ref().is_none_or(|m| *m == e.model)
                    };
                    for (_, e, _) in ledger.borrow().iter().filter(|(k, e, _)| in_scope(k, e)) {
                        if e.day == today {
                            day += e.spend.cost_usd;
                        } else if e.day >= month && e.day < today {
                            before += e.spend.cost_usd;
                        }
                    }
                    let micro = crate::ledger::micro;
                    crate::ledger::BudgetBook::new(now, micro(day), micro(before))
                });
                Ok(book.grant(
                    now,
                    (ask.want.requests, ask.want.tokens),
                    ask.want.give_back,
                    (ask.tpm, ask.per_month),
                ))
            })
        })
    }

    fn rate_spender(&self) -> super::RateSpender {
        let windows = self.windows.clone();
        let clock = self.clock.clone();
        Rc::new(move |key: String, window_ms: u64, delta: i64| {
            let windows = windows.clone();
            let now = clock.now_ms();
            Box::pin(async move {
                let mut windows = windows.borrow_mut();
                windows.entry(key).or_default().spend(now, window_ms, delta);
            })
        })
    }

    fn timer(&self) -> Timer {
        let clock = self.clock.clone();
        Rc::new(move |ms| Box::pin(clock.sleep(ms)))
    }

    /// Background work is queued; [`FakePlatform::run`] and [`FakePlatform::run_background`] run it.
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
