//! The one-shot behind [`Pending`]: waited on, polled as a future by a
//! hand-written executor (no async runtime), completed from another
//! thread, or abandoned by a stopping node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Wake;
use std::thread::{self, Thread};

use super::pending as oneshot;
use super::*;

/// Wakes a parked thread, counting the wakes.
struct Unpark {
    thread: Thread,
    wakes: AtomicUsize,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Runs `fut` to completion on this thread, parking between polls;
/// returns its output, the number of polls and the number of wakes.
fn block_on<F: Future>(fut: F) -> (F::Output, usize, usize) {
    let unpark = Arc::new(Unpark {
        thread: thread::current(),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return (out, polls, unpark.wakes.load(Ordering::SeqCst));
        }
        thread::park();
    }
}

#[test]
fn a_pending_future_is_woken_by_the_completing_thread() {
    let (done, mut pending) = oneshot::<u64>();
    // The completer goes once the first poll returned (a pause instead let
    // a loaded host complete it before that poll, which was then ready).
    let (polled, first_poll) = std::sync::mpsc::channel::<()>();
    let completer = thread::spawn(move || {
        first_poll.recv().unwrap();
        done.complete(Ok(7));
    });
    let mut first = Some(polled);
    let watched = std::future::poll_fn(|cx| {
        let r = Pin::new(&mut pending).poll(cx);
        if let Some(polled) = first.take() {
            polled.send(()).unwrap();
        }
        r
    });
    let (out, polls, wakes) = block_on(watched);
    completer.join().unwrap();
    assert_eq!(out, Ok(7));
    // Pending at the first poll (the result comes after it), ready at the
    // one its wake caused (a spurious unpark may add polls).
    assert!(polls >= 2, "polled {polls} times");
    assert_eq!(wakes, 1);
}

#[test]
fn a_result_already_there_is_ready_at_the_first_poll() {
    let (done, pending) = oneshot::<u64>();
    done.complete(Err(ProposeError::Removed));
    let (out, polls, wakes) = block_on(pending);
    assert_eq!((out, polls, wakes), (Err(ProposeError::Removed), 1, 0));
}

#[test]
fn a_dropped_completer_reports_the_node_stopped() {
    let (done, pending) = oneshot::<u64>();
    let t = thread::spawn(move || drop(done));
    assert_eq!(pending.wait(), Err(ProposeError::Stopped));
    t.join().unwrap();
    let (done, pending) = oneshot::<u64>();
    drop(done);
    assert_eq!(block_on(pending).0, Err(ProposeError::Stopped));
}

#[test]
fn waiting_times_out_and_the_result_is_taken_once() {
    let (done, pending) = oneshot::<u64>();
    let waited = Duration::from_millis(20);
    assert_eq!(
        pending.wait_timeout(waited),
        Err(ProposeError::Timeout { waited })
    );
    // The completer outlives its waiter harmlessly.
    done.complete(Ok(1));

    let (done, pending) = oneshot::<u64>();
    assert_eq!(pending.try_result(), None);
    done.complete(Ok(3));
    assert_eq!(pending.try_result(), Some(Ok(3)));
    assert_eq!(pending.try_result(), None, "taken once");

    let (done, pending) = oneshot::<u64>();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        done.complete(Ok(5));
    });
    assert_eq!(pending.wait_timeout(Duration::from_secs(60)), Ok(5));
    t.join().unwrap();
}

/// A state machine the member does not run.
struct Other;

impl StateMachine for Other {
    fn apply(&mut self, _: u64, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }
    fn restore(&mut self, _: &[u8]) -> Result<(), crate::state_machine::RestoreError> {
        Ok(())
    }
}

/// A query job downcasts: the right type runs the closure, another gets
/// a typed error naming both, a stopped node says so.
#[test]
fn a_query_for_another_state_machine_is_a_typed_error() {
    struct Mine(u32);
    impl StateMachine for Mine {
        fn apply(&mut self, _: u64, _: &[u8]) -> Vec<u8> {
            Vec::new()
        }
        fn snapshot(&self) -> Vec<u8> {
            Vec::new()
        }
        fn restore(&mut self, _: &[u8]) -> Result<(), crate::state_machine::RestoreError> {
            Ok(())
        }
    }
    let sm = Mine(41);
    let run = |job: QueryJob| job(Ok((&sm as &dyn Any, std::any::type_name::<Mine>())));
    let (tx, rx) = crossbeam_channel::bounded(1);
    run(query_job::<Mine, u32, _>(|m| m.0 + 1, tx));
    assert_eq!(rx.recv().unwrap(), Ok(42));
    let (tx, rx) = crossbeam_channel::bounded(1);
    run(query_job::<Other, u32, _>(|_| 0, tx));
    let e = rx.recv().unwrap().unwrap_err();
    assert!(matches!(e, QueryError::WrongStateMachine { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("Other") && text.contains("Mine"), "{text}");
    let (tx, rx) = crossbeam_channel::bounded(1);
    query_job::<Mine, u32, _>(|m| m.0, tx)(Err(ProposeError::Stopped));
    assert_eq!(rx.recv().unwrap(), Err(QueryError::Stopped));
}
