//! Work a hung-up client cannot cut off, without a task of its own while the client waits.
//!
//! A paid request's claim, upstream call and settlement must finish even if hyper drops the
//! request's future (the client hung up). Spawning them as a task costs every request a task
//! cell, a wake-up of the other worker and a wake-up back. [`Detachable`] instead polls the work
//! where it is awaited and spawns it only if it is dropped unfinished: the rare hang-up pays for
//! the task, the common request does not.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The work panicked; whatever it held was dropped (its guards ran).
#[derive(Debug)]
pub(crate) struct Panicked;

/// A future run in place that goes on in a task of its own if dropped before it finishes.
pub(crate) struct Detachable<F: Future<Output: Send> + Send + 'static> {
    work: Option<Pin<Box<F>>>,
}

impl<F: Future<Output: Send> + Send + 'static> Detachable<F> {
    pub(crate) fn new(work: F) -> Self {
        Detachable {
            work: Some(Box::pin(work)),
        }
    }
}

impl<F: Future<Output: Send> + Send + 'static> Future for Detachable<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let work = self.work.as_mut().expect("polled after it finished");
        // A panic is caught here, as a task's would be, so that the work is dropped (running
        // its guards) and the caller can still answer.
        match catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                self.work = None;
                Poll::Ready(Ok(output))
            }
            Err(_) => {
                self.work = None;
                Poll::Ready(Err(Panicked))
            }
        }
    }
}

impl<F: Future<Output: Send> + Send + 'static> Drop for Detachable<F> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            // Outside a runtime (it is shutting down) the work is dropped, as a task would be.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(work);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn finishes_in_place() {
        let answer = Detachable::new(async { 7 }).await.unwrap();
        assert_eq!(answer, 7);
    }

    #[tokio::test]
    async fn dropped_unfinished_it_finishes_in_a_task() {
        let done = Arc::new(AtomicBool::new(false));
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let flag = done.clone();
        let work = Detachable::new(async move {
            wait.await.unwrap();
            flag.store(true, Ordering::SeqCst);
        });
        // Polled once (it waits), then dropped, as hyper drops a hung-up client's future.
        let timed_out = tokio::time::timeout(Duration::from_millis(10), work).await;
        assert!(timed_out.is_err());
        go.send(()).unwrap();
        for _ in 0..200 {
            if done.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the dropped work never finished");
    }

    #[tokio::test]
    async fn a_panic_is_caught_and_the_work_dropped() {
        struct Guard(Arc<AtomicBool>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = Guard(dropped.clone());
        let outcome = Detachable::new(async move {
            let _guard = guard;
            tokio::task::yield_now().await;
            panic!("the handler failed");
        })
        .await;
        assert!(outcome.is_err());
        assert!(dropped.load(Ordering::SeqCst), "the guard ran");
    }
}
