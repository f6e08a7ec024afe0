//! Tests: sync. The Go-style primitives of `sim_core::sync` and `JoinSet`, over many seeds.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use kdst_tests::assert_all_complete;
use kdst_tests::{at, failed};
use sim_core::sync::channel::{self, SendError, TrySendError};
use sim_core::sync::oneshot::{self, RecvError};
use sim_core::sync::{Mutex, Notify, RwLock, WaitGroup};
use sim_core::{
    Elapsed, EventKind, FailureKind, JoinSet, Outcome, Simulation, event, now, sleep, spawn,
    timeout, yield_now,
};

const WORKERS: u32 = 3;
const ITERATIONS: u32 = 4;

// ---------------------------------------------------------------------------------------------
// Mutex

#[test]
fn mutex_read_yield_write_never_loses_an_update() {
    let mut sim = Simulation::default();
    for seed in 0..1000 {
        assert_eq!(increments(&mut sim, seed, true), WORKERS * ITERATIONS, "seed {seed}");
    }
}

#[test]
fn without_the_mutex_read_yield_write_loses_updates_on_some_seeds() {
    let mut sim = Simulation::default();
    let lossy = (0..200).filter(|&seed| increments(&mut sim, seed, false) < WORKERS * ITERATIONS);
    assert!(lossy.count() > 0, "the unlocked read-yield-write never lost an update");
}

#[test]
fn mutex_try_lock_fails_while_held_and_succeeds_after_release() {
    assert_all_complete(&mut Simulation::default(), 200, || {
        let mutex = Rc::new(Mutex::named("state", 0));
        let other = mutex.clone();
        spawn("holder", async move {
            let mut guard = mutex.lock().await;
            assert!(mutex.is_locked());
            assert!(mutex.try_lock().is_none(), "try_lock by the holder itself");
            *guard += 1;
            sleep(Duration::from_secs(1)).await;
            drop(guard);
            assert!(!mutex.is_locked());
        });
        spawn("prober", async move {
            sleep(Duration::from_millis(500)).await;
            assert!(other.try_lock().is_none(), "try_lock while another task holds the lock");
            sleep(Duration::from_secs(1)).await;
            let guard = other.try_lock().expect("try_lock after release");
            assert_eq!(*guard, 1);
        });
    });
}

#[test]
fn mutex_locked_twice_by_one_task_is_a_deadlock_naming_the_task_and_mutex() {
    let mut sim = Simulation::default();
    for seed in 0..20 {
        let outcome = sim.run(seed, || {
            let mutex = Rc::new(Mutex::named("state", ()));
            spawn("relocker", async move {
                let _first = mutex.lock().await;
                let _second = mutex.lock().await;
            });
        });
        let failure = failed(outcome, FailureKind::Deadlock);
        assert!(failure.message.contains("deadlock"), "{failure}");
        assert!(
            failure.details.contains(
                "task 0 (relocker): waiting to lock Mutex \"state\" held by task 0 (relocker)"
            ),
            "{failure}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RwLock

#[test]
fn rwlock_readers_share_the_lock_on_some_seeds() {
    let mut sim = Simulation::default();
    let mut shared = 0;
    for seed in 0..200 {
        let most = Rc::new(Cell::new(0));
        let outcome = sim.run(seed, {
            let most = most.clone();
            move || {
                let lock = Rc::new(RwLock::named("cache", 7));
                for reader in 0..3 {
                    let (lock, most) = (lock.clone(), most.clone());
                    spawn(format!("reader-{reader}"), async move {
                        let guard = lock.read().await;
                        assert_eq!(*guard, 7);
                        most.set(most.get().max(lock.readers()));
                        yield_now().await;
                        most.set(most.get().max(lock.readers()));
                    });
                }
            }
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        if most.get() > 1 {
            shared += 1;
        }
    }
    assert!(shared > 0, "no seed had two readers holding the lock at once");
}

#[test]
fn rwlock_writer_excludes_readers_and_other_writers() {
    assert_all_complete(&mut Simulation::default(), 1000, || {
        let lock = Rc::new(RwLock::named("cache", 0u32));
        let readers_in = Rc::new(Cell::new(0u32));
        let writers_in = Rc::new(Cell::new(0u32));
        for reader in 0..3 {
            let (lock, readers_in, writers_in) =
                (lock.clone(), readers_in.clone(), writers_in.clone());
            spawn(format!("reader-{reader}"), async move {
                for _ in 0..2 {
                    let guard = lock.read().await;
                    assert_eq!(writers_in.get(), 0, "a reader got in while a writer held it");
                    assert!(!lock.is_write_locked());
                    readers_in.set(readers_in.get() + 1);
                    let seen = *guard;
                    yield_now().await;
                    assert_eq!(*guard, seen, "the value changed under a read lock");
                    readers_in.set(readers_in.get() - 1);
                }
            });
        }
        for writer in 0..2 {
            let (lock, readers_in, writers_in) =
                (lock.clone(), readers_in.clone(), writers_in.clone());
            spawn(format!("writer-{writer}"), async move {
                for _ in 0..2 {
                    let mut guard = lock.write().await;
                    assert_eq!(readers_in.get(), 0, "a writer got in while readers held it");
                    assert_eq!(writers_in.get(), 0, "two writers held it at once");
                    assert_eq!(lock.readers(), 0);
                    writers_in.set(1);
                    *guard += 1;
                    yield_now().await;
                    writers_in.set(0);
                }
            });
        }
    });
}

#[test]
fn rwlock_second_read_lock_while_a_writer_waits_deadlocks_on_some_seeds() {
    let mut sim = Simulation::default();
    let (mut completed, mut deadlocked) = (0, 0);
    for seed in 0..200 {
        let outcome = sim.run(seed, || {
            let lock = Rc::new(RwLock::named("cache", 0));
            let writer_lock = lock.clone();
            spawn("reader", async move {
                let _first = lock.read().await;
                let _second = lock.read().await;
            });
            spawn("writer", async move {
                *writer_lock.write().await += 1;
            });
        });
        match outcome {
            Outcome::Completed => completed += 1,
            outcome => {
                let failure = failed(outcome, FailureKind::Deadlock);
                let reader = "task 0 (reader): waiting to read-lock RwLock \"cache\" (a writer is \
                              waiting)";
                let writer =
                    "task 1 (writer): waiting to write-lock RwLock \"cache\" held by 1 reader(s)";
                assert!(failure.details.contains(reader), "{failure}");
                assert!(failure.details.contains(writer), "{failure}");
                deadlocked += 1;
            }
        }
    }
    assert!(deadlocked > 0, "Go's writer preference never deadlocked the re-locking reader");
    assert!(completed > 0, "every schedule deadlocked");
}

// ---------------------------------------------------------------------------------------------
// WaitGroup

#[test]
fn waitgroup_wait_returns_only_after_every_done() {
    assert_all_complete(&mut Simulation::default(), 500, || {
        let group = WaitGroup::named("workers");
        let finished = Rc::new(Cell::new(0));
        group.add(i64::from(WORKERS));
        for worker in 0..WORKERS {
            let (group, finished) = (group.clone(), finished.clone());
            spawn(format!("worker-{worker}"), async move {
                for _ in 0..=worker {
                    yield_now().await;
                }
                finished.set(finished.get() + 1);
                group.done();
            });
        }
        spawn("waiter", async move {
            group.wait().await;
            assert_eq!(finished.get(), WORKERS, "wait returned before every worker was done");
            assert_eq!(group.count(), 0);
        });
    });
}

#[test]
fn waitgroup_negative_counter_panics_with_go_message() {
    let mut sim = Simulation::default();
    let outcome = sim.run(1, || {
        let group = WaitGroup::new();
        spawn("worker", async move { group.done() });
    });
    let failure = failed(outcome, FailureKind::Panic);
    assert_eq!(failure.message, "sync: negative WaitGroup counter");
    assert_eq!(failure.task_name.as_deref(), Some("worker"));
}

#[test]
fn waitgroup_missing_done_is_a_deadlock_naming_the_group() {
    let mut sim = Simulation::default();
    let outcome = sim.run(1, || {
        let group = WaitGroup::named("workers");
        group.add(2);
        let worker_group = group.clone();
        spawn("worker", async move { worker_group.done() });
        spawn("waiter", async move { group.wait().await });
    });
    let failure = failed(outcome, FailureKind::Deadlock);
    assert!(
        failure.details.contains("task 1 (waiter): waiting to wait for WaitGroup \"workers\"\n"),
        "{failure}"
    );
}

// ---------------------------------------------------------------------------------------------
// Channels

#[test]
fn bounded_channel_of_one_makes_the_sender_wait_for_the_receiver() {
    assert_all_complete(&mut Simulation::default(), 1000, || {
        let (tx, rx) = channel::bounded(1);
        let sent = Rc::new(Cell::new(0u32));
        let received = Rc::new(Cell::new(0u32));
        let (sender_sent, sender_received) = (sent.clone(), received.clone());
        spawn("sender", async move {
            for value in 0..5 {
                tx.send(value).await.expect("the receiver is alive");
                sender_sent.set(sender_sent.get() + 1);
                assert!(sender_sent.get() - sender_received.get() <= 1, "more than 1 in flight");
                if value == 1 {
                    assert!(now() >= at(Duration::from_secs(1)), "send 1 did not wait");
                }
            }
        });
        spawn("receiver", async move {
            sleep(Duration::from_secs(1)).await;
            assert_eq!(rx.len(), 1, "a full channel of capacity 1 holds exactly one value");
            let mut expected = 0;
            while let Some(value) = rx.recv().await {
                assert_eq!(value, expected);
                expected += 1;
                received.set(received.get() + 1);
            }
            assert_eq!(sent.get(), 5);
        });
    });
}

#[test]
fn bounded_channel_keeps_fifo_order_for_one_sender() {
    let mut sim = Simulation::default();
    for seed in 0..300 {
        assert_eq!(
            fifo_received(&mut sim, seed, || channel::bounded(3)),
            (0..50).collect::<Vec<_>>()
        );
    }
}

#[test]
fn unbounded_channel_keeps_fifo_order_for_one_sender() {
    let mut sim = Simulation::default();
    for seed in 0..1000 {
        assert_eq!(fifo_received(&mut sim, seed, channel::unbounded), (0..50).collect::<Vec<_>>());
    }
}

#[test]
fn unbounded_channel_never_makes_the_sender_wait() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        let (tx, rx) = channel::unbounded();
        spawn("sender", async move {
            for value in 0..1000 {
                tx.send(value).await.expect("the receiver is alive");
            }
            assert_eq!(tx.len(), 1000);
        });
        spawn("receiver", async move {
            sleep(Duration::from_secs(1)).await;
            assert_eq!(rx.len(), 1000, "the sender finished before anything was received");
            let mut count = 0;
            while rx.recv().await.is_some() {
                count += 1;
            }
            assert_eq!(count, 1000);
        });
    });
}

#[test]
fn recv_returns_none_once_every_sender_is_dropped_and_the_buffer_drained() {
    assert_all_complete(&mut Simulation::default(), 1000, || {
        let (tx, rx) = channel::unbounded();
        let other = tx.clone();
        spawn("sender-a", async move { tx.send(1).await.expect("receiver alive") });
        spawn("sender-b", async move { other.send(2).await.expect("receiver alive") });
        spawn("receiver", async move {
            let mut got = Vec::new();
            while let Some(value) = rx.recv().await {
                got.push(value);
            }
            got.sort_unstable();
            assert_eq!(got, [1, 2], "None came before the buffer was drained");
            assert_eq!(rx.recv().await, None, "a closed channel stays closed");
        });
    });
}

#[test]
fn sender_close_ends_the_stream_while_other_senders_are_alive() {
    assert_all_complete(&mut Simulation::default(), 300, || {
        let (tx, rx) = channel::unbounded();
        let keep_alive = tx.clone();
        spawn("producer", async move {
            tx.send(1).await.expect("open");
            tx.send(2).await.expect("open");
            tx.close();
            assert_eq!(tx.send(3).await, Err(SendError(3)));
            assert_eq!(tx.try_send(4), Err(TrySendError::Closed(4)));
        });
        spawn("consumer", async move {
            let _keep_alive = keep_alive;
            let mut got = Vec::new();
            while let Some(value) = rx.recv().await {
                got.push(value);
            }
            assert_eq!(got, [1, 2]);
        });
    });
}

#[test]
fn receiver_close_makes_sends_fail() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        let (tx, rx) = channel::bounded(4);
        spawn("consumer", async move {
            assert_eq!(rx.recv().await, Some("first"));
            rx.close();
        });
        spawn("producer", async move {
            tx.send("first").await.expect("open");
            sleep(Duration::from_secs(1)).await;
            assert_eq!(tx.send("second").await, Err(SendError("second")));
        });
    });
}

#[test]
fn send_without_receivers_gives_the_value_back() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        let (tx, rx) = channel::bounded::<String>(1);
        drop(rx);
        spawn("sender", async move {
            let back = tx.send("payload".to_string()).await;
            assert_eq!(back, Err(SendError("payload".to_string())));
        });
    });
}

#[test]
fn blocked_sender_gets_its_value_back_when_the_receiver_drops() {
    assert_all_complete(&mut Simulation::default(), 200, || {
        let (tx, rx) = channel::bounded(1);
        spawn("sender", async move {
            tx.send(1).await.expect("room for one");
            assert_eq!(tx.send(2).await, Err(SendError(2)));
            assert!(now() >= at(Duration::from_secs(1)), "the second send did not wait");
        });
        spawn("receiver", async move {
            sleep(Duration::from_secs(1)).await;
            drop(rx);
        });
    });
}

#[test]
fn try_send_on_a_full_bounded_channel_is_full() {
    assert_all_complete(&mut Simulation::default(), 20, || {
        let (tx, rx) = channel::bounded(2);
        spawn("task", async move {
            assert_eq!(tx.try_send(1), Ok(()));
            assert_eq!(tx.try_send(2), Ok(()));
            assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
            assert_eq!(rx.try_recv(), Some(1));
            assert_eq!(tx.try_send(3), Ok(()));
            assert_eq!(rx.recv().await, Some(2));
            assert_eq!(rx.recv().await, Some(3));
            assert_eq!(rx.try_recv(), None);
        });
    });
}

#[test]
fn mpmc_receivers_split_the_values_and_each_value_arrives_exactly_once() {
    let mut sim = Simulation::default();
    let mut split = 0;
    for seed in 0..1000 {
        let received = Rc::new(RefCell::new(Vec::new()));
        let outcome = sim.run(seed, {
            let received = received.clone();
            move || {
                let (tx, rx) = channel::bounded(2);
                for producer in 0..2u32 {
                    let tx = tx.clone();
                    spawn(format!("producer-{producer}"), async move {
                        for value in 0..30 {
                            tx.send(producer * 100 + value).await.expect("receivers alive");
                        }
                    });
                }
                drop(tx);
                for consumer in 0..3u32 {
                    let (rx, received) = (rx.clone(), received.clone());
                    spawn(format!("consumer-{consumer}"), async move {
                        while let Some(value) = rx.recv().await {
                            received.borrow_mut().push((consumer, value));
                        }
                    });
                }
            }
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        let received = received.take();
        let mut values: Vec<u32> = received.iter().map(|&(_, value)| value).collect();
        values.sort_unstable();
        let expected: Vec<u32> = (0..30).chain(100..130).collect();
        assert_eq!(values, expected, "seed {seed}: a value was lost or duplicated");
        let mut consumers: Vec<u32> = received.iter().map(|&(consumer, _)| consumer).collect();
        consumers.sort_unstable();
        consumers.dedup();
        if consumers.len() > 1 {
            split += 1;
        }
    }
    assert!(split > 0, "no seed shared the values between receivers");
}

#[test]
fn receiver_waiting_on_a_silent_live_sender_is_a_deadlock() {
    let mut sim = Simulation::default();
    for seed in 0..20 {
        let outcome = sim.run(seed, || {
            let (tx, rx) = channel::named::<u32>("jobs", Some(4));
            spawn("consumer", async move {
                let _sender = tx;
                rx.recv().await;
            });
        });
        let failure = failed(outcome, FailureKind::Deadlock);
        assert!(failure.message.contains("deadlock"), "{failure}");
        assert!(
            failure.details.contains("task 0 (consumer): waiting to receive from channel \"jobs\""),
            "{failure}"
        );
    }
}

#[test]
fn sender_waiting_on_a_full_channel_nobody_reads_is_a_deadlock() {
    let mut sim = Simulation::default();
    let outcome = sim.run(3, || {
        let (tx, rx) = channel::named("jobs", Some(1));
        spawn("producer", async move {
            let _receiver = rx;
            tx.send(1).await.expect("room for one");
            tx.send(2).await.expect("never completes");
        });
    });
    let failure = failed(outcome, FailureKind::Deadlock);
    assert!(
        failure.details.contains("task 0 (producer): waiting to send on channel \"jobs\" (full)"),
        "{failure}"
    );
}

// ---------------------------------------------------------------------------------------------
// oneshot

#[test]
fn oneshot_delivers_the_value() {
    assert_all_complete(&mut Simulation::default(), 100, || {
        let (tx, rx) = oneshot::channel();
        spawn("sender", async move {
            sleep(Duration::from_secs(1)).await;
            tx.send(42).expect("the receiver is alive");
        });
        spawn("receiver", async move {
            assert_eq!(rx.recv().await, Ok(42));
            assert!(now() >= at(Duration::from_secs(1)));
        });
    });
}

#[test]
fn oneshot_sender_dropped_without_sending_is_recv_error() {
    assert_all_complete(&mut Simulation::default(), 100, || {
        let (tx, rx) = oneshot::channel::<u32>();
        spawn("sender", async move {
            sleep(Duration::from_secs(1)).await;
            drop(tx);
        });
        spawn("receiver", async move {
            assert_eq!(rx.recv().await, Err(RecvError));
        });
    });
}

#[test]
fn oneshot_send_to_a_dropped_receiver_gives_the_value_back() {
    assert_all_complete(&mut Simulation::default(), 10, || {
        let (tx, rx) = oneshot::channel();
        drop(rx);
        spawn("sender", async move { assert_eq!(tx.send(5), Err(5)) });
    });
}

// ---------------------------------------------------------------------------------------------
// Notify

#[test]
fn notify_one_before_notified_stores_one_permit() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        let notify = Notify::named("ready");
        spawn("task", async move {
            notify.notify_one();
            notify.notify_one();
            notify.notified().await;
            let second = timeout(Duration::from_secs(1), notify.notified()).await;
            assert_eq!(second, Err(Elapsed), "two notify_one calls stored two permits");
        });
    });
}

#[test]
fn notify_waiters_wakes_every_current_waiter_and_stores_no_permit() {
    assert_all_complete(&mut Simulation::default(), 200, || {
        let notify = Notify::named("ready");
        let woken = Rc::new(Cell::new(0));
        for waiter in 0..3 {
            let (notify, woken) = (notify.clone(), woken.clone());
            spawn(format!("waiter-{waiter}"), async move {
                notify.notified().await;
                woken.set(woken.get() + 1);
            });
        }
        spawn("notifier", async move {
            sleep(Duration::from_secs(1)).await;
            notify.notify_waiters();
            sleep(Duration::from_secs(1)).await;
            assert_eq!(woken.get(), 3);
            let later = timeout(Duration::from_secs(1), notify.notified()).await;
            assert_eq!(later, Err(Elapsed), "notify_waiters stored a permit");
        });
    });
}

#[test]
fn notify_one_wakes_exactly_one_of_two_waiters() {
    let mut sim = Simulation::default();
    for seed in 0..1000 {
        let results = Rc::new(RefCell::new(Vec::new()));
        let outcome = sim.run(seed, {
            let results = results.clone();
            move || {
                let notify = Notify::named("ready");
                for waiter in 0..2 {
                    let (notify, results) = (notify.clone(), results.clone());
                    spawn(format!("waiter-{waiter}"), async move {
                        let result = timeout(Duration::from_secs(10), notify.notified()).await;
                        results.borrow_mut().push(result);
                    });
                }
                spawn("notifier", async move {
                    sleep(Duration::from_secs(1)).await;
                    notify.notify_one();
                });
            }
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        let results = results.take();
        assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 1, "seed {seed}");
        assert_eq!(results.iter().filter(|result| result.is_err()).count(), 1, "seed {seed}");
    }
}

#[test]
fn notify_one_wakes_the_longest_waiting_task() {
    assert_all_complete(&mut Simulation::default(), 200, || {
        let notify = Notify::named("ready");
        let first = notify.clone();
        let second = notify.clone();
        spawn("first", async move {
            let result = timeout(Duration::from_secs(10), first.notified()).await;
            assert_eq!(result, Ok(()), "the longest waiter was not woken");
        });
        spawn("second", async move {
            sleep(Duration::from_millis(1)).await;
            let result = timeout(Duration::from_secs(10), second.notified()).await;
            assert_eq!(result, Err(Elapsed), "the newer waiter was woken");
        });
        spawn("notifier", async move {
            sleep(Duration::from_secs(1)).await;
            notify.notify_one();
        });
    });
}

// ---------------------------------------------------------------------------------------------
// JoinSet

#[test]
fn joinset_join_next_returns_every_result_then_none() {
    assert_all_complete(&mut Simulation::default(), 300, || {
        spawn("main", async {
            let mut set = JoinSet::new();
            for job in 0..5u32 {
                set.spawn(format!("job-{job}"), async move {
                    for _ in 0..job {
                        yield_now().await;
                    }
                    job * 10
                });
            }
            assert_eq!(set.len(), 5);
            let mut got = Vec::new();
            while let Some(value) = set.join_next().await {
                got.push(value);
            }
            got.sort_unstable();
            assert_eq!(got, [0, 10, 20, 30, 40]);
            assert!(set.is_empty());
            assert_eq!(set.join_next().await, None);
        });
    });
}

#[test]
fn joinset_join_all_returns_results_in_completion_order() {
    assert_all_complete(&mut Simulation::default(), 300, || {
        spawn("main", async {
            let mut set = JoinSet::new();
            for job in 0..5u64 {
                set.spawn(format!("job-{job}"), async move {
                    sleep(Duration::from_secs(5 - job)).await;
                    job
                });
            }
            assert_eq!(set.join_all().await, [4, 3, 2, 1, 0]);
            assert!(set.is_empty());
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Scheduling points

#[test]
fn plain_code_between_two_events_is_never_preempted() {
    let (between, not_between) = preemptions_around(|| Box::pin(async {}));
    assert_eq!(between, 0);
    assert_eq!(not_between, SCHEDULING_SEEDS);
}

#[test]
fn uncontended_mutex_lock_is_a_scheduling_point() {
    assert_scheduling_point(|| {
        let mutex = Rc::new(Mutex::new(()));
        Box::pin(async move { drop(mutex.lock().await) })
    });
}

#[test]
fn uncontended_rwlock_read_and_write_are_scheduling_points() {
    assert_scheduling_point(|| {
        let lock = Rc::new(RwLock::new(()));
        Box::pin(async move { drop(lock.read().await) })
    });
    assert_scheduling_point(|| {
        let lock = Rc::new(RwLock::new(()));
        Box::pin(async move { drop(lock.write().await) })
    });
}

#[test]
fn channel_send_and_ready_recv_are_scheduling_points() {
    assert_scheduling_point(|| {
        let (tx, rx) = channel::unbounded();
        Box::pin(async move {
            tx.send(1).await.expect("open");
            drop(rx);
        })
    });
    assert_scheduling_point(|| {
        let (tx, rx) = channel::bounded(1);
        tx.try_send(1).expect("room");
        Box::pin(async move {
            assert_eq!(rx.recv().await, Some(1));
            drop(tx);
        })
    });
}

#[test]
fn ready_oneshot_waitgroup_and_notify_are_scheduling_points() {
    assert_scheduling_point(|| {
        let (tx, rx) = oneshot::channel();
        tx.send(1).expect("receiver alive");
        Box::pin(async move { assert_eq!(rx.recv().await, Ok(1)) })
    });
    assert_scheduling_point(|| {
        let group = WaitGroup::new();
        Box::pin(async move { group.wait().await })
    });
    assert_scheduling_point(|| {
        let notify = Notify::new();
        notify.notify_one();
        Box::pin(async move { notify.notified().await })
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers

const SCHEDULING_SEEDS: u32 = 200;

type Op = Pin<Box<dyn Future<Output = ()>>>;

/// Runs `WORKERS` tasks doing `ITERATIONS` read-yield-write increments of a shared counter, under
/// a mutex or not; returns the final count.
fn increments(sim: &mut Simulation, seed: u64, locked: bool) -> u32 {
    let counter = Rc::new(Cell::new(0));
    let outcome = sim.run(seed, {
        let counter = counter.clone();
        move || {
            let mutex = Rc::new(Mutex::named("counter", ()));
            let holders = Rc::new(Cell::new(0));
            for worker in 0..WORKERS {
                let (mutex, counter, holders) = (mutex.clone(), counter.clone(), holders.clone());
                spawn(format!("worker-{worker}"), async move {
                    for _ in 0..ITERATIONS {
                        let guard = if locked { Some(mutex.lock().await) } else { None };
                        holders.set(holders.get() + 1);
                        if locked {
                            assert_eq!(holders.get(), 1, "two tasks inside the critical section");
                        }
                        let read = counter.get();
                        yield_now().await;
                        counter.set(read + 1);
                        holders.set(holders.get() - 1);
                        drop(guard);
                    }
                });
            }
        }
    });
    assert_eq!(outcome, Outcome::Completed, "seed {seed}");
    counter.get()
}

/// One sender sends 0..50 through the channel `make` builds; returns what the receiver got.
fn fifo_received(
    sim: &mut Simulation,
    seed: u64,
    make: impl Fn() -> (channel::Sender<u32>, channel::Receiver<u32>),
) -> Vec<u32> {
    let received = Rc::new(RefCell::new(Vec::new()));
    let outcome = sim.run(seed, {
        let received = received.clone();
        move || {
            let (tx, rx) = make();
            spawn("sender", async move {
                for value in 0..50 {
                    tx.send(value).await.expect("the receiver is alive");
                    if value % 7 == 0 {
                        yield_now().await;
                    }
                }
            });
            spawn("receiver", async move {
                while let Some(value) = rx.recv().await {
                    received.borrow_mut().push(value);
                }
            });
        }
    });
    assert_eq!(outcome, Outcome::Completed, "seed {seed}");
    received.take()
}

/// Asserts that, with nothing contended, the operation `make` builds still lets another task run
/// in the middle of it on some seeds (and not on others).
fn assert_scheduling_point(make: impl Fn() -> Op) {
    let (between, not_between) = preemptions_around(make);
    assert!(between > 0, "the operation was never preempted");
    assert!(not_between > 0, "the operation was always preempted");
}

/// Over `SCHEDULING_SEEDS` seeds, task "a" emits "before", awaits the operation `make` builds,
/// and emits "after", while task "b" emits "b". Returns how many runs had "b" between "before"
/// and "after", and how many did not.
fn preemptions_around(make: impl Fn() -> Op) -> (u32, u32) {
    let mut sim = Simulation::default();
    let (mut between, mut not_between) = (0, 0);
    for seed in 0..u64::from(SCHEDULING_SEEDS) {
        let outcome = sim.run(seed, || {
            let op = make();
            spawn("a", async move {
                event("before");
                op.await;
                event("after");
            });
            spawn("b", async { event("b") });
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        let messages: Vec<&str> = sim
            .trace()
            .events()
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::Message(text) => Some(text.as_ref()),
                _ => None,
            })
            .collect();
        let position = |text: &str| messages.iter().position(|message| *message == text);
        let (before, after, b) = (position("before"), position("after"), position("b"));
        assert!(before < after, "seed {seed}: {messages:?}");
        if before < b && b < after {
            between += 1;
        } else {
            not_between += 1;
        }
    }
    (between, not_between)
}

/// Regression: a notification sent while the `Notified` future has been created but not yet
/// polled is not lost (tokio's `notify_waiters` guarantee).
#[test]
fn notify_waiters_reaches_a_notified_created_before_it_but_not_yet_polled() {
    let mut sim = Simulation::default();
    for seed in 0..200 {
        let notify = Notify::new();
        let outcome = sim.run(seed, move || {
            let waiter_notify = notify.clone();
            spawn("waiter", async move {
                let notified = waiter_notify.notified();
                sleep(Duration::from_secs(1)).await;
                timeout(Duration::from_secs(5), notified).await.expect("notified");
            });
            spawn("notifier", async move {
                sleep(Duration::from_millis(500)).await;
                notify.notify_waiters();
            });
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
    }
}
