//! Several programs: start order, staged stop, a program that gives up
//! alone (helpers from `tests.rs`).

use std::time::Duration;

use super::tests::*;
use super::*;
use crate::supervisor::events::{Command, Peer};
use crate::supervisor::report::Report;
use crate::vocab::Scale;

/// web (listen readiness), worker (after web, not critical), clock
/// (after worker, 5 s to stop); one worker each.
fn three() -> Settings {
    let mut web = program(1, false);
    web.name = Arc::from("web");
    web.ready = ReadyMode::Listen;
    let mut worker = program(1, false);
    worker.name = Arc::from("worker");
    worker.after = vec![0];
    worker.critical = false;
    let mut clock = program(1, false);
    clock.name = Arc::from("clock");
    clock.after = vec![1];
    clock.graceful_timeout = Duration::from_secs(5);
    let mut s = settings(1, false);
    s.programs = vec![web, worker, clock];
    s
}

fn at(program: usize, slot: u32) -> SlotId {
    SlotId { program, slot }
}

fn spawns(a: &[Action]) -> Vec<SlotId> {
    a.iter()
        .filter_map(|a| match a {
            Action::SpawnWorker { slot, .. } => Some(*slot),
            _ => None,
        })
        .collect()
}

fn stops(a: &[Action]) -> Vec<Pid> {
    a.iter()
        .filter_map(|a| match a {
            Action::Stop { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect()
}

/// The restart of `slot` after an exit: at once, or at the backoff's
/// tick; returns when.
fn restart(m: &mut Machine, exit: &[Action], slot: SlotId, now: Instant) -> Instant {
    if spawns(exit) == vec![slot] {
        return now;
    }
    let when = m.next_deadline().expect("a restart is due");
    assert_eq!(spawns(&tick(m, when)), vec![slot]);
    when
}

fn start(m: &mut Machine, slot: SlotId, p: i32, t: Instant) -> Vec<Action> {
    m.on_event(
        Event::Spawned {
            slot,
            replacement: false,
            pid: pid(p),
        },
        t,
    )
}

/// All three running: web 100 (ready by listening), worker 200 and clock
/// 300 (ready by delay, after 2 s each).
fn all_running() -> (Machine, Instant) {
    let t0 = Instant::now();
    let mut m = Machine::new(three());
    m.start();
    assert_eq!(spawns(&m.on_event(Event::Bound, t0)), vec![at(0, 0)]);
    start(&mut m, at(0, 0), 100, t0);
    let a = m.on_event(Event::Ready { pid: pid(100) }, t0);
    assert_eq!(
        spawns(&a),
        vec![at(1, 0)],
        "worker starts once web is ready"
    );
    assert!(reports(&a).contains(&Report::ProgramStarting {
        program: Arc::from("worker"),
        after: vec![Arc::from("web")],
    }));
    start(&mut m, at(1, 0), 200, t0);
    let t1 = after(t0, 2000);
    let a = tick(&mut m, t1);
    assert_eq!(spawns(&a), vec![at(2, 0)], "clock starts once worker is");
    start(&mut m, at(2, 0), 300, t1);
    let t2 = after(t1, 2000);
    tick(&mut m, t2);
    assert!(m.snapshot(t2).ready);
    (m, t2)
}

#[test]
fn programs_start_in_the_order_of_after() {
    let t0 = Instant::now();
    let mut m = Machine::new(three());
    m.start();
    m.on_event(Event::Bound, t0);
    start(&mut m, at(0, 0), 100, t0);
    // Not ready yet: nothing else starts, however long it takes.
    assert!(spawns(&tick(&mut m, after(t0, 30_000))).is_empty());
    assert!(!m.snapshot(after(t0, 30_000)).ready);
    all_running();
}

#[test]
fn the_stop_goes_in_reverse_order_each_program_after_its_dependents() {
    let (mut m, t) = all_running();
    let a = sig(&mut m, Signal::TERM, t);
    assert_eq!(stops(&a), vec![pid(300)], "clock first");
    let a = exited(&mut m, 300, Status::Exited(0), after(t, 100));
    assert_eq!(stops(&a), vec![pid(200)], "then worker");
    let a = exited(&mut m, 200, Status::Exited(0), after(t, 200));
    assert_eq!(stops(&a), vec![pid(100)], "web last");
    let a = exited(&mut m, 100, Status::Exited(0), after(t, 300));
    assert!(acts(a).contains(&Action::KillLeftovers {
        signal: Signal::TERM
    }));
    assert_eq!(
        acts(no_children(&mut m, after(t, 300))),
        vec![Action::Exit(0)]
    );
}

#[test]
fn a_program_past_its_own_timeout_is_killed_and_the_next_stage_goes_on() {
    let (mut m, t) = all_running();
    sig(&mut m, Signal::TERM, t);
    // clock ignores TERM: SIGKILL at its own 5 s, not at the whole budget.
    assert_eq!(m.next_deadline(), Some(after(t, 5000)));
    let a = tick(&mut m, after(t, 5000));
    assert!(acts(a.clone()).contains(&Action::Kill { pid: pid(300) }));
    assert!(reports(&a).iter().any(
        |r| matches!(r, Report::ProgramTimeout { program, .. } if program.as_ref() == "clock")
    ));
    assert!(stops(&a).is_empty(), "worker waits for clock to be gone");
    let a = exited(&mut m, 300, Status::Signaled(Signal::KILL), after(t, 5001));
    assert_eq!(stops(&a), vec![pid(200)]);
}

#[test]
fn a_program_that_is_not_critical_gives_up_alone() {
    let (mut m, t) = all_running();
    // worker crashes, then again and again at once (crash loop after 3).
    let mut now = t;
    let mut p = 200;
    // The first exit comes after a good run; the next three are quick.
    for i in 0..4 {
        let a = exited(&mut m, p, Status::Exited(1), now);
        if i < 3 {
            now = restart(&mut m, &a, at(1, 0), now);
            p += 1;
            start(&mut m, at(1, 0), p, now);
        } else {
            let r = reports(&a);
            assert!(
                r.iter().any(
                    |r| matches!(r, Report::GaveUp { who, .. } if who.program.as_ref() == "worker")
                ),
                "{r:?}"
            );
            assert!(!r.iter().any(|r| matches!(r, Report::CrashLoop { .. })));
            assert!(!acts(a).iter().any(|a| matches!(a, Action::Exit(_))));
        }
    }
    // web and clock go on; nothing of worker restarts.
    let later = after(now, 60_000);
    assert!(spawns(&tick(&mut m, later)).is_empty());
    let snap = m.snapshot(later);
    assert_eq!(snap.phase, crate::status::Phase::Running);
    assert!(snap.ready, "the programs left are ready");
    // The others still restart as usual.
    let a = exited(&mut m, 100, Status::Exited(1), later);
    assert!(reports(&a)
        .iter()
        .any(|r| matches!(r, Report::Exited { .. })));
    assert_eq!(spawns(&a), vec![at(0, 0)]);
}

#[test]
fn a_critical_program_in_a_crash_loop_stops_the_container_with_1() {
    let (mut m, t) = all_running();
    let mut now = t;
    let mut p = 300;
    // The first exit comes after a good run; the next three are quick.
    for i in 0..4 {
        let a = exited(&mut m, p, Status::Exited(1), now);
        if i < 3 {
            now = restart(&mut m, &a, at(2, 0), now);
            p += 1;
            start(&mut m, at(2, 0), p, now);
        } else {
            assert!(reports(&a)
                .iter()
                .any(|r| matches!(r, Report::CrashLoop { .. })));
            // clock's slot is empty: worker is stopped first.
            assert_eq!(stops(&a), vec![pid(200)]);
        }
    }
    exited(&mut m, 200, Status::Exited(0), now);
    exited(&mut m, 100, Status::Exited(0), now);
    assert_eq!(acts(no_children(&mut m, now)), vec![Action::Exit(1)]);
}

#[test]
fn programs_after_one_that_gave_up_never_start() {
    let t0 = Instant::now();
    let mut m = Machine::new(three());
    m.start();
    m.on_event(Event::Bound, t0);
    start(&mut m, at(0, 0), 100, t0);
    m.on_event(Event::Ready { pid: pid(100) }, t0);
    let mut now = t0;
    let mut p = 200;
    start(&mut m, at(1, 0), p, now);
    let mut last = Vec::new();
    for _ in 0..3 {
        last = exited(&mut m, p, Status::Exited(1), now);
        if let Some(d) = m.next_deadline() {
            now = d;
            if !spawns(&tick(&mut m, now)).is_empty() {
                p += 1;
                start(&mut m, at(1, 0), p, now);
            }
        }
    }
    let r = reports(&last);
    assert!(
        r.iter().any(|r| matches!(r, Report::GaveUp { blocked, .. } if blocked == &vec![Arc::<str>::from("clock")])),
        "{r:?}"
    );
    assert!(spawns(&tick(&mut m, after(now, 60_000))).is_empty());
}

#[test]
fn a_one_shot_program_that_finished_cleanly_lets_the_next_start() {
    let mut release = program(1, false);
    release.name = Arc::from("release");
    release.policy = RestartPolicy::Never;
    let mut web = program(1, false);
    web.name = Arc::from("web");
    web.after = vec![0];
    let mut s = settings(1, false);
    s.programs = vec![release, web];
    let t0 = Instant::now();
    let mut m = Machine::new(s);
    m.start();
    assert_eq!(spawns(&m.on_event(Event::Bound, t0)), vec![at(0, 0)]);
    start(&mut m, at(0, 0), 100, t0);
    // A migration that takes 300 ms and exits 0.
    let a = exited(&mut m, 100, Status::Exited(0), after(t0, 300));
    assert_eq!(spawns(&a), vec![at(1, 0)]);
}

#[test]
fn a_one_shot_program_that_failed_keeps_the_next_from_starting() {
    let mut release = program(1, false);
    release.name = Arc::from("release");
    release.policy = RestartPolicy::Never;
    let mut web = program(1, false);
    web.name = Arc::from("web");
    web.after = vec![0];
    let mut s = settings(1, false);
    s.programs = vec![release, web];
    let t0 = Instant::now();
    let mut m = Machine::new(s);
    m.start();
    m.on_event(Event::Bound, t0);
    start(&mut m, at(0, 0), 100, t0);
    let a = exited(&mut m, 100, Status::Exited(2), after(t0, 300));
    assert!(spawns(&a).is_empty());
}

fn ask(m: &mut Machine, command: Command, program: Option<usize>, t: Instant) -> Vec<Action> {
    m.on_event(
        Event::Control {
            command,
            program,
            by: Peer { pid: 42, uid: 0 },
        },
        t,
    )
}

fn replans(a: &[Action]) -> Vec<usize> {
    a.iter()
        .filter_map(|a| match a {
            Action::Replan { program } => Some(*program),
            _ => None,
        })
        .collect()
}

#[test]
fn a_reload_of_one_program_replaces_only_its_workers() {
    let (mut m, t) = all_running();
    assert_eq!(
        replans(&ask(&mut m, Command::Reload, None, t)),
        vec![0, 1, 2]
    );
    let (mut m, t) = all_running();
    let a = ask(&mut m, Command::Reload, Some(1), t);
    assert_eq!(replans(&a), vec![1], "worker alone");
    assert!(reports(&a).contains(&Report::Reloading {
        program: Some(Arc::from("worker"))
    }));
    let a = m.on_event(
        Event::Replanned {
            program: 1,
            count: None,
        },
        t,
    );
    assert_eq!(spawns(&a), vec![at(1, 0)], "a new worker for worker.0");
}

#[test]
fn a_scale_goes_to_the_named_program_and_not_to_one_that_waits() {
    let (mut m, t) = all_running();
    let a = ask(&mut m, Command::Scale(Scale::By(1)), Some(2), t);
    assert_eq!(spawns(&a), vec![at(2, 1)], "clock.1");
    let a = ask(&mut m, Command::Scale(Scale::By(1)), None, t);
    assert_eq!(spawns(&a), vec![at(0, 1)], "web.1 by default");
    // worker waits for web: nothing is started for it before its turn.
    let t0 = Instant::now();
    let mut m = Machine::new(three());
    m.start();
    m.on_event(Event::Bound, t0);
    start(&mut m, at(0, 0), 100, t0);
    let a = ask(&mut m, Command::Scale(Scale::By(1)), Some(1), t0);
    assert!(spawns(&a).is_empty());
    assert!(
        reports(&a)
            .iter()
            .any(|r| matches!(r, Report::Refused { why, .. } if why.contains("after"))),
        "{a:?}"
    );
}
