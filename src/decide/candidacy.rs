//! Our node's life as a failover candidate ([`Candidacy`]): whom we defer to, what blocks us,
//! the promotion we announce, and our yield. Its parts are private: the failover rules change
//! them only through the named transitions below, each of which states what must hold before
//! and after it (`debug_assert!`, on in debug builds and in the simulator's campaigns built with
//! `debug-assertions`). Imports only [`super::types`].
//!
//! The parts overlap on purpose, so they are not one flat enum: a block's clock survives a
//! failed attempt of the failover command (the fallback counts from the first failure), and a
//! yield lives beside the deferral to whoever we yielded to. [`Candidacy::phase`] names where
//! the life is, for the reader and for the invariants.

use super::types::Mono;
use crate::state::FailoverPhase;
use crate::state::FailoverStatus;
use crate::state::Timestamp;
use serde::Serialize;

/// Our turn to promote and its yield: `Ours` -> `Served` (published as `yielded` in our
/// `/state.json` entry) -> `Ours` when a master is connected again; or `Served` -> `Withdrawn`
/// (nobody acted on it; no longer published) -> `Ours` after `failover::yield_quiet_secs`.
/// With our maintenance file: `Ours` -> `Standing` (published as a standing `yielded`) for as
/// long as the file is there, then `Withdrawn` (or `Served`, if a promotion was announced on
/// it meanwhile). While it is not `Ours` we do not promote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Yield {
    #[default]
    Ours,
    /// We yielded at `at`. `taken_up`: another daemon announced its failover command running
    /// since; it may have acted on our yield (and a failed attempt may still promote its
    /// node), so the yield holds until a master is connected, never withdrawn.
    Served { at: Mono, taken_up: bool },
    /// We yielded at `at` and stopped serving it at `withdrawn`.
    Withdrawn { at: Mono, withdrawn: Mono },
    /// Our maintenance file is there: we stand aside from `at` on, whatever the master's state,
    /// until it goes (`failover::standing_yield`). `taken_up` as for `Served`.
    Standing { at: Mono, taken_up: bool },
}

impl Yield {
    /// When we yielded, while the yield lasts.
    pub fn since(self) -> Option<Mono> {
        match self {
            Yield::Ours => None,
            Yield::Served { at, .. } | Yield::Withdrawn { at, .. } | Yield::Standing { at, .. } => Some(at),
        }
    }
}

/// We are the candidate, and something keeps us from promoting.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Blocked {
    pub since_mono: Mono,
    /// Our wall clock then, or at the first decision after the latest retry of the failover
    /// command ended (`None` while it runs): our own node must be polled after it before we
    /// yield.
    pub since_wall: Option<Timestamp>,
    pub reason: String,
    /// After a failed failover command: the fetch time of the first poll of our node (after
    /// the latest attempt ended) that showed it in recovery and quiet (see `settled`), and our
    /// `mono` then; `None` until then, and again after each attempt.
    pub settled_since: Option<(Timestamp, Mono)>,
}

/// Where our candidacy is, named (see [`Candidacy::phase`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nothing in view: no candidate chosen, or a master is connected.
    Idle,
    /// Another standby was the candidate when the failover became due; it stays one while its
    /// daemon may be promoting it.
    DeferredTo,
    /// We are the candidate and cannot promote (the block's reason says why).
    Blocked,
    /// Our failover command runs, or succeeded and its promotion is not yet seen everywhere:
    /// announced as `promoting`.
    Promoting,
    /// We gave up our turn and publish it as `yielded`.
    Yielded,
    /// We stopped publishing our yield; our turn comes back after a quiet period.
    Withdrawn,
}

/// Our node's candidacy. Owned by the decision memory; changed only through the
/// transitions below.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Candidacy {
    /// The other standby we found furthest along when every condition for a failover held:
    /// its daemon saw the same and may be promoting it, so we keep it as the candidate while
    /// it stays one, even if we later look as far along (two promotions otherwise). With when
    /// we first deferred.
    deferred_to: Option<(String, Mono)>,
    /// What keeps us from promoting, since when (`failover_fallback_timeout`).
    blocked: Option<Blocked>,
    /// What we tell the others about our own node's failover, in its entry of `/state.json`:
    /// promoting while our failover command runs; yielded once we gave up our turn (a promise:
    /// no failover command until another master is seen).
    published: Option<FailoverStatus>,
    /// Whether we gave up our turn to promote, and where that yield is in its life.
    turn: Yield,
}

impl Candidacy {
    /// Where the life is. A yield wins over the rest (it keeps us from promoting whatever
    /// else holds), then an announced promotion, a block, a deferral.
    pub fn phase(&self) -> Phase {
        match (self.turn, self.announces_promotion(), &self.blocked, &self.deferred_to) {
            (Yield::Served { .. } | Yield::Standing { .. }, ..) => Phase::Yielded,
            (Yield::Withdrawn { .. }, ..) => Phase::Withdrawn,
            (Yield::Ours, true, ..) => Phase::Promoting,
            (Yield::Ours, false, Some(_), _) => Phase::Blocked,
            (Yield::Ours, false, None, Some(_)) => Phase::DeferredTo,
            (Yield::Ours, false, None, None) => Phase::Idle,
        }
    }

    /// What we publish about our failover in our `/state.json` entry.
    pub fn published(&self) -> Option<&FailoverStatus> {
        self.published.as_ref()
    }

    /// The standby we deferred to, and since when.
    pub fn deferred_to(&self) -> Option<(&str, Mono)> {
        self.deferred_to.as_ref().map(|(n, at)| (n.as_str(), *at))
    }

    pub fn blocked(&self) -> Option<&Blocked> {
        self.blocked.as_ref()
    }

    pub fn turn(&self) -> Yield {
        self.turn
    }

    /// Whether we announce our failover command running, or its promotion not yet seen
    /// everywhere.
    pub fn announces_promotion(&self) -> bool {
        self.published
            .as_ref()
            .is_some_and(|f| f.phase == FailoverPhase::Promoting)
    }

    /// Whether we serve a yield of our turn to promote, standing or not (a withdrawn one
    /// still keeps us from promoting, see [`Yield`]).
    pub fn yielded(&self) -> bool {
        matches!(self.turn, Yield::Served { .. } | Yield::Standing { .. })
    }

    /// Whether we serve a standing yield (our maintenance file).
    pub fn standing(&self) -> bool {
        matches!(self.turn, Yield::Standing { .. })
    }

    /// What every transition leaves true: a served yield is what we publish and nothing else
    /// publishes one; we never defer to ourselves (checked by the caller, who knows our name).
    pub fn debug_assert_invariants(&self, own_db: Option<&str>) {
        let published_yield = self
            .published
            .as_ref()
            .is_some_and(|f| f.phase == FailoverPhase::Yielded);
        debug_assert_eq!(
            published_yield,
            self.yielded(),
            "published {:?} with {:?}",
            self.published,
            self.turn
        );
        debug_assert_eq!(
            self.published.as_ref().is_some_and(|f| f.standing),
            self.standing(),
            "published {:?} with {:?}",
            self.published,
            self.turn
        );
        debug_assert!(
            own_db.is_none() || self.deferred_to.as_ref().map(|(n, _)| n.as_str()) != own_db,
            "deferred to our own node"
        );
    }

    /// A master is connected: no candidate any more (the yield ends on its own rule).
    pub(super) fn master_connected(&mut self) {
        self.deferred_to = None;
        self.blocked = None;
    }

    /// `furthest`, not our node, is the candidate: nothing blocks us, and we keep deferring to
    /// the one we first deferred to while it stays `furthest`.
    pub(super) fn defer_to(&mut self, furthest: &str, now: Mono) {
        self.blocked = None;
        if self.deferred_to.as_ref().map(|(n, _)| n.as_str()) != Some(furthest) {
            self.deferred_to = Some((furthest.to_string(), now));
        }
    }

    /// The one we deferred to yielded (or our own yield, the only reason we deferred, ended):
    /// it is no longer kept as the candidate.
    pub(super) fn forget_deferral(&mut self) {
        self.deferred_to = None;
    }

    /// `reason` keeps us, the candidate, from promoting: the block as it stands, started now
    /// unless the same reason blocked us already.
    pub(super) fn block(&mut self, reason: &str, mono: Mono, wall: Timestamp) -> Blocked {
        match self.blocked.as_mut() {
            Some(b) if b.reason == reason => {
                b.since_wall.get_or_insert(wall);
                b.clone()
            }
            _ => {
                let b = Blocked {
                    since_mono: mono,
                    since_wall: Some(wall),
                    reason: reason.to_string(),
                    settled_since: None,
                };
                self.blocked = Some(b.clone());
                b
            }
        }
    }

    /// After a failed command: where the settle rule stands (see `failover::settled`).
    pub(super) fn settle_mark(&mut self) -> Option<&mut Option<(Timestamp, Mono)>> {
        self.blocked.as_mut().map(|b| &mut b.settled_since)
    }

    /// We run our failover command now, announcing it. A block stays (its clock counts from
    /// the first failure) but our node must be polled again after this attempt ends.
    pub(super) fn start_promoting(&mut self, status: FailoverStatus) {
        debug_assert_eq!(status.phase, FailoverPhase::Promoting);
        debug_assert_eq!(self.turn, Yield::Ours, "a promotion while we yield");
        if let Some(b) = self.blocked.as_mut() {
            b.since_wall = None;
            b.settled_since = None;
        }
        self.published = Some(status);
    }

    /// Our failover command succeeded: whatever blocked us before is over.
    pub(super) fn promotion_succeeded(&mut self) {
        self.blocked = None;
    }

    /// Our failover command failed, or its promotion was seen (or never came): we stop
    /// announcing it.
    pub(super) fn stop_announcing(&mut self) {
        if self.announces_promotion() {
            self.published = None;
        }
    }

    /// We give up our turn to the next candidate, publishing `status` (phase `yielded`).
    pub(super) fn give_way(&mut self, status: FailoverStatus, now: Mono) {
        debug_assert_eq!(status.phase, FailoverPhase::Yielded);
        debug_assert_eq!(self.turn, Yield::Ours, "a yield while one lasts");
        debug_assert!(!self.announces_promotion(), "a yield while our promotion is announced");
        self.published = Some(status);
        self.turn = Yield::Served {
            at: now,
            taken_up: false,
        };
    }

    /// Another daemon announced a promotion after our yield: it holds until a master is seen
    /// (a standing one: until a master is seen, even if our maintenance file goes first).
    pub(super) fn yield_taken_up(&mut self) {
        match self.turn {
            Yield::Served { at, .. } => self.turn = Yield::Served { at, taken_up: true },
            Yield::Standing { at, .. } => self.turn = Yield::Standing { at, taken_up: true },
            _ => {}
        }
        debug_assert!(self.yielded(), "taken up without a yield");
    }

    /// Nobody acted on our yield (or, standing, nobody announced a promotion on it and our
    /// maintenance file is gone): we stop publishing it (and still do not promote for a while).
    pub(super) fn withdraw_yield(&mut self, now: Mono) {
        let (Yield::Served { at, taken_up: false } | Yield::Standing { at, taken_up: false }) = self.turn else {
            debug_assert!(false, "withdrawing {:?}", self.turn);
            return;
        };
        self.published = None;
        self.turn = Yield::Withdrawn { at, withdrawn: now };
    }

    /// Our maintenance file is there: we stand aside, publishing `status` (a standing
    /// `yielded`), until it goes.
    pub(super) fn stand_aside(&mut self, status: FailoverStatus, now: Mono) {
        debug_assert!(status.phase == FailoverPhase::Yielded && status.standing);
        debug_assert_eq!(self.turn, Yield::Ours, "a standing yield while one lasts");
        debug_assert!(!self.announces_promotion(), "a yield while our promotion is announced");
        self.published = Some(status);
        self.turn = Yield::Standing {
            at: now,
            taken_up: false,
        };
    }

    /// The file is still there: the standing yield is confirmed as of `since`, against
    /// `master` (the one we know now: a new master means any promotion announced on it is
    /// over, so it is no longer taken up).
    pub(super) fn confirm_standing(&mut self, master: Option<&str>, since: Timestamp) {
        let (Yield::Standing { at, taken_up }, Some(f)) = (self.turn, self.published.as_mut()) else {
            debug_assert!(false, "confirming {:?}", self.turn);
            return;
        };
        if f.master.as_deref() != master {
            f.master = master.map(str::to_string);
            self.turn = Yield::Standing { at, taken_up: false };
        } else {
            self.turn = Yield::Standing { at, taken_up };
        }
        f.since = since;
    }

    /// Our maintenance file went while a promotion announced on our standing yield may still
    /// be under way: it becomes an ordinary yield, given now (`status`), that holds until a
    /// master is connected, as any yield taken up.
    pub(super) fn standing_taken_up_ends(&mut self, status: FailoverStatus, now: Mono) {
        debug_assert!(
            matches!(self.turn, Yield::Standing { taken_up: true, .. }),
            "from {:?}",
            self.turn
        );
        debug_assert!(status.phase == FailoverPhase::Yielded && !status.standing);
        self.published = Some(status);
        self.turn = Yield::Served {
            at: now,
            taken_up: true,
        };
    }

    /// Our yield is over, served or withdrawn: our turn to promote is back.
    pub(super) fn end_yield(&mut self) {
        debug_assert!(self.turn != Yield::Ours, "no yield to end");
        self.published = None;
        self.turn = Yield::Ours;
    }

    /// A withdrawn yield nobody acted on has run out: our turn is back, with no block and no
    /// deferral (we deferred to the next candidate only because we had yielded).
    pub(super) fn turn_back(&mut self) {
        debug_assert!(
            matches!(self.turn, Yield::Withdrawn { .. }),
            "turn back from {:?}",
            self.turn
        );
        self.end_yield();
        self.blocked = None;
        self.deferred_to = None;
    }

    /// For the table tests: what another daemon's memory would publish.
    #[cfg(test)]
    pub(super) fn set_published(&mut self, status: Option<FailoverStatus>) {
        self.published = status;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: FailoverPhase) -> FailoverStatus {
        FailoverStatus {
            phase,
            master: Some("pg1".into()),
            reason: "test".into(),
            since: Timestamp::default(),
            standing: false,
        }
    }

    /// The whole life, each transition's phase: deferred, then blocked, a failed attempt that
    /// keeps the block's clock, a yield, its withdrawal and the turn coming back.
    #[test]
    fn a_candidacy_walks_its_phases() {
        let wall = Timestamp::default();
        let mut c = Candidacy::default();
        assert_eq!(c.phase(), Phase::Idle);
        c.defer_to("pg2", Mono(1.0));
        c.defer_to("pg2", Mono(2.0));
        assert_eq!(
            (c.phase(), c.deferred_to()),
            (Phase::DeferredTo, Some(("pg2", Mono(1.0))))
        );
        c.forget_deferral();
        let b = c.block("maintenance_mode_file exists", Mono(3.0), wall);
        assert_eq!((c.phase(), b.since_mono), (Phase::Blocked, Mono(3.0)));
        c.start_promoting(status(FailoverPhase::Promoting));
        assert_eq!(c.phase(), Phase::Promoting);
        assert_eq!(
            c.blocked().map(|b| (b.since_mono, b.since_wall)),
            Some((Mono(3.0), None))
        );
        c.stop_announcing();
        // the same reason again: the clock runs on from the first block
        let b = c.block("maintenance_mode_file exists", Mono(9.0), wall);
        assert_eq!(
            (c.phase(), b.since_mono, b.since_wall),
            (Phase::Blocked, Mono(3.0), Some(wall))
        );
        c.give_way(status(FailoverPhase::Yielded), Mono(10.0));
        assert_eq!((c.phase(), c.yielded()), (Phase::Yielded, true));
        assert_eq!(c.published().map(|s| s.phase), Some(FailoverPhase::Yielded));
        c.withdraw_yield(Mono(20.0));
        assert_eq!((c.phase(), c.published()), (Phase::Withdrawn, None));
        c.turn_back();
        assert_eq!((c.phase(), c.turn()), (Phase::Idle, Yield::Ours));
        c.debug_assert_invariants(Some("pg3"));
    }

    /// A yield that another daemon took up is never withdrawn; it ends when a master is seen.
    #[test]
    fn a_taken_up_yield_holds_until_it_ends() {
        let mut c = Candidacy::default();
        c.give_way(status(FailoverPhase::Yielded), Mono(10.0));
        c.yield_taken_up();
        assert_eq!(
            c.turn(),
            Yield::Served {
                at: Mono(10.0),
                taken_up: true
            }
        );
        c.master_connected();
        assert_eq!(c.phase(), Phase::Yielded);
        c.end_yield();
        assert_eq!((c.phase(), c.published()), (Phase::Idle, None));
    }

    /// The transitions refuse what must not happen (debug builds): a second yield while one
    /// lasts would publish two promises.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a yield while one lasts")]
    fn a_second_yield_is_refused() {
        let mut c = Candidacy::default();
        c.give_way(status(FailoverPhase::Yielded), Mono(10.0));
        c.give_way(status(FailoverPhase::Yielded), Mono(11.0));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a promotion while we yield")]
    fn no_promotion_while_we_yield() {
        let mut c = Candidacy::default();
        c.give_way(status(FailoverPhase::Yielded), Mono(10.0));
        c.start_promoting(status(FailoverPhase::Promoting));
    }
}
