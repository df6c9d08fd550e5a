//! The request executor: runs each request's future to completion, driven from JavaScript.
//!
//! wasm-bindgen's executor turns an async export into a promise (a closure, a task, a microtask per wake-up) and
//! every awaited JavaScript promise into two closures registered for finalization; in `make profile` that
//! machinery cost more per request than the gateway's own Rust. Here a request is a task in a table, and a
//! JavaScript promise it awaits is a numbered slot: shim.js attaches plain JavaScript callbacks that hand the
//! settled value back through one callback registered per instance, and the task is polled again at once, in the
//! same call. A streamed response body is a task too, pushing chunks into the response's stream. Futures woken
//! by other means (a task waiting on another's result) still work: any waker schedules a poll, here through a
//! microtask.

use super::js;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::JsValue;

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// How often tasks are checked for having outlived their request (see [`Executor::sweep`]).
const SWEEP_EVERY_MS: f64 = 60_000.0;

struct Entry {
    task: Task,
    started_ms: f64,
    max_ms: f64,
}

enum Slot {
    Waiting(Option<Waker>),
    Settled(Result<JsValue, JsValue>),
}

#[derive(Default)]
struct Executor {
    tasks: RefCell<HashMap<u32, Entry>>,
    ready: RefCell<Vec<u32>>,
    slots: RefCell<HashMap<u32, Slot>>,
    next_id: Cell<u32>,
    /// A poll loop is running (wake-ups join it instead of scheduling another).
    draining: Cell<bool>,
    /// A microtask to run the poll loop is already queued.
    scheduled: Cell<bool>,
    /// The task being polled (for [`current`]).
    polling: Cell<u32>,
    /// The task `start` is polling for the first time, and its answer if it finished then.
    starting: Cell<Option<u32>>,
    immediate: RefCell<Option<JsValue>>,
    /// The settle and poll callbacks have been handed to shim.js (once per wasm instance).
    registered: Cell<bool>,
    last_sweep_ms: Cell<f64>,
}

thread_local! {
    static EXECUTOR: Executor = Executor::default();
}

impl Executor {
    fn next(&self) -> u32 {
        let id = self.next_id.get().wrapping_add(1);
        self.next_id.set(id);
        id
    }

    fn wake(&self, id: u32) {
        self.ready.borrow_mut().push(id);
        if !self.draining.get() && !self.scheduled.get() {
            self.scheduled.set(true);
            js::schedule();
        }
    }

    /// Polls every task that has been woken, until none is. Only called from JavaScript's event loop (a
    /// request, a settled promise, a scheduled microtask), never from inside a poll, so a flag left set by a
    /// panic that aborted the previous loop is simply overwritten.
    fn drain(&self) {
        self.draining.set(true);
        loop {
            let Some(id) = self.ready.borrow_mut().pop() else {
                break;
            };
            // Taken out of the table while polled: the poll may start or wake other tasks.
            let Some(mut entry) = self.tasks.borrow_mut().remove(&id) else {
                continue;
            };
            let waker = waker(id);
            self.polling.set(id);
            let poll = entry.task.as_mut().poll(&mut Context::from_waker(&waker));
            if poll.is_pending() {
                self.tasks.borrow_mut().insert(id, entry);
            }
        }
        self.draining.set(false);
        self.scheduled.set(false);
    }

    /// Drops the tasks older than their bound. A task normally ends by its own deadlines, which are JavaScript
    /// timers; if the runtime cancels a request whose client went away, those timers and the promises it awaits
    /// may never fire, and nothing else would ever remove the task from the table.
    fn sweep(&self, now_ms: f64) {
        if now_ms - self.last_sweep_ms.get() < SWEEP_EVERY_MS {
            return;
        }
        self.last_sweep_ms.set(now_ms);
        let stale: Vec<u32> = self
            .tasks
            .borrow()
            .iter()
            .filter(|(_, e)| now_ms - e.started_ms > e.max_ms)
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            self.drop_task(id);
            js::abandon(id);
        }
    }

    fn drop_task(&self, id: u32) {
        // Dropped outside the borrow: dropping a future may run code that touches the executor.
        let entry = self.tasks.borrow_mut().remove(&id);
        drop(entry);
    }

    fn register(&self) {
        if self.registered.replace(true) {
            return;
        }
        let settle = Closure::<dyn Fn(u32, bool, JsValue)>::new(settle).into_js_value();
        let poll = Closure::<dyn Fn()>::new(|| EXECUTOR.with(Executor::drain)).into_js_value();
        let cancel = Closure::<dyn Fn(u32)>::new(cancel).into_js_value();
        js::register(&settle, &poll, &cancel);
    }
}

/// Runs `request`: its response if it finished without waiting, otherwise a promise of it. A request still
/// unanswered after `max_ms` is abandoned (its promise rejects): its own deadlines must have ended it by then.
pub fn start(request: impl Future<Output = JsValue> + 'static, max_ms: f64) -> JsValue {
    EXECUTOR.with(|ex| {
        ex.register();
        let now_ms = js_sys::Date::now();
        ex.sweep(now_ms);
        let id = ex.next();
        let task: Task = Box::pin(async move {
            let response = request.await;
            EXECUTOR.with(|ex| {
                if ex.starting.get() == Some(id) {
                    *ex.immediate.borrow_mut() = Some(response);
                } else {
                    js::finish(id, &response);
                }
            });
        });
        let entry = Entry {
            task,
            started_ms: now_ms,
            max_ms,
        };
        ex.tasks.borrow_mut().insert(id, entry);
        // (A leftover answer can only be from a start that a panic cut short.)
        ex.immediate.borrow_mut().take();
        ex.starting.set(Some(id));
        ex.ready.borrow_mut().push(id);
        ex.drain();
        ex.starting.set(None);
        match ex.immediate.borrow_mut().take() {
            Some(response) => response,
            None => js::deferred(id).into(),
        }
    })
}

/// Runs `task` in the background (a response body being produced); its number is [`current`] inside it.
pub fn spawn(task: impl Future<Output = ()> + 'static) -> u32 {
    EXECUTOR.with(|ex| {
        ex.register();
        let id = ex.next();
        let entry = Entry {
            task: Box::pin(task),
            started_ms: js_sys::Date::now(),
            // Ended by its stream's end or by `cancel`: a stream has no overall deadline.
            max_ms: f64::INFINITY,
        };
        ex.tasks.borrow_mut().insert(id, entry);
        ex.wake(id);
        id
    })
}

/// The number of the task being polled.
pub fn current() -> u32 {
    EXECUTOR.with(|ex| ex.polling.get())
}

/// shim.js's callback for a response body the client no longer reads: its task is dropped.
fn cancel(id: u32) {
    EXECUTOR.with(|ex| ex.drop_task(id))
}

/// shim.js's callback for a settled promise that a task awaits.
fn settle(slot: u32, ok: bool, value: JsValue) {
    EXECUTOR.with(|ex| {
        let waiting = ex.slots.borrow_mut().get_mut(&slot).map(|s| {
            let value = if ok { Ok(value) } else { Err(value) };
            match std::mem::replace(s, Slot::Settled(value)) {
                Slot::Waiting(w) => w,
                Slot::Settled(_) => None,
            }
        });
        // No slot: the future that awaited it was dropped (a hedge that lost, a timeout).
        if let Some(Some(w)) = waiting {
            // The poll loop runs right below: the wake-up joins it instead of scheduling a microtask.
            ex.draining.set(true);
            w.wake();
        }
        ex.drain();
    })
}

/// A JavaScript promise, awaited without closures: resolves to its value, or its rejection as `Err`.
pub struct Wait {
    slot: u32,
}

pub fn wait(promise: &js_sys::Promise) -> Wait {
    wait_slot(|slot| js::watch(promise, slot))
}

/// Awaits whatever `start` reports to the executor as the slot it is given (shim.js's `settle` callback).
pub fn wait_slot(start: impl FnOnce(u32)) -> Wait {
    EXECUTOR.with(|ex| {
        ex.register();
        let slot = ex.next();
        ex.slots.borrow_mut().insert(slot, Slot::Waiting(None));
        start(slot);
        Wait { slot }
    })
}

impl Future for Wait {
    type Output = Result<JsValue, JsValue>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        EXECUTOR.with(|ex| {
            let mut slots = ex.slots.borrow_mut();
            match slots.remove(&self.slot) {
                Some(Slot::Settled(v)) => Poll::Ready(v),
                Some(Slot::Waiting(_)) => {
                    slots.insert(self.slot, Slot::Waiting(Some(cx.waker().clone())));
                    Poll::Pending
                }
                None => Poll::Ready(Err(JsValue::from_str("awaited twice"))),
            }
        })
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        EXECUTOR.with(|ex| ex.slots.borrow_mut().remove(&self.slot));
    }
}

// A waker is the task's number: waking queues it for the poll loop.
fn waker(id: u32) -> Waker {
    // SAFETY: the data pointer is only ever the task number, never dereferenced, and every function of the
    // vtable treats it as such.
    unsafe { Waker::from_raw(raw(id)) }
}

fn raw(id: u32) -> RawWaker {
    RawWaker::new(id as usize as *const (), &VTABLE)
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(
    |p| raw(p as usize as u32),
    |p| EXECUTOR.with(|ex| ex.wake(p as usize as u32)),
    |p| EXECUTOR.with(|ex| ex.wake(p as usize as u32)),
    |_| {},
);
