//! The network: what a connection from one host to another meets at a given instant, as a
//! pure function of the schedule's link faults. Owns the meaning of cuts, delays, flapping
//! and isolation. A host's connections to itself (a daemon to its own node) never fail.

use crate::schedule::{Cut, Fault, FaultKind, LinkFault};
use crate::Us;

/// What a connection opened now meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Pass,
    /// Answers come this much later than usual.
    Delay(Us),
    Refuse,
    Blackhole,
}

impl Link {
    fn worse(self, other: Link) -> Link {
        let rank = |l: Link| match l {
            Link::Pass => (0, 0),
            Link::Delay(d) => (1, d),
            Link::Refuse => (2, 0),
            Link::Blackhole => (3, 0),
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    pub fn is_pass(self) -> bool {
        self == Link::Pass
    }
}

fn of_cut(c: Cut) -> Link {
    match c {
        Cut::Refuse => Link::Refuse,
        Cut::Blackhole => Link::Blackhole,
    }
}

/// What daemon host `from`'s connection to node `to`'s PostgreSQL meets at `t`: the host link,
/// or worse when the daemons' database links are cut (the WAL stream is not).
pub fn db_link(faults: &[Fault], from: usize, to: usize, t: Us) -> Link {
    let mut out = link(faults, from, to, t);
    if from == to {
        return out;
    }
    for f in faults.iter().filter(|f| f.active(t)) {
        if let FaultKind::DbLinks { pairs, cut } = &f.kind {
            if pairs.contains(&(from, to)) {
                out = out.worse(of_cut(*cut));
            }
        }
    }
    out
}

/// Whether no fault touched daemon host `from`'s connections to node `to`'s PostgreSQL during
/// `[t0, t1]`.
pub fn db_clear_during(faults: &[Fault], from: usize, to: usize, t0: Us, t1: Us) -> bool {
    from == to || !faults.iter().any(|f| f.touches_db(from, to) && f.during(t0, t1))
}

/// The link `from -> to` at `t`.
pub fn link(faults: &[Fault], from: usize, to: usize, t: Us) -> Link {
    if from == to {
        return Link::Pass;
    }
    let mut out = Link::Pass;
    for f in faults.iter().filter(|f| f.active(t) && f.touches(from, to)) {
        let here = match &f.kind {
            FaultKind::Isolate { cut, .. } | FaultKind::Zone { cut, .. } => of_cut(*cut),
            FaultKind::Links { how, .. } => match how {
                LinkFault::Cut(c) => of_cut(*c),
                LinkFault::Delay(d) => Link::Delay(*d),
                LinkFault::Flap { cut, period } => {
                    if ((t - f.at) / (*period).max(1)) % 2 == 0 {
                        of_cut(*cut)
                    } else {
                        Link::Pass
                    }
                }
            },
            _ => Link::Pass,
        };
        out = out.worse(here);
    }
    out
}

/// Whether no link fault touched `from -> to` during `[t0, t1]`.
pub fn clear_during(faults: &[Fault], from: usize, to: usize, t0: Us, t1: Us) -> bool {
    from == to || !faults.iter().any(|f| f.touches(from, to) && f.during(t0, t1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MS, SEC};

    #[test]
    fn cuts_flaps_and_isolation() {
        let faults = vec![
            Fault {
                at: SEC,
                dur: SEC,
                kind: FaultKind::Isolate {
                    host: 0,
                    cut: Cut::Blackhole,
                },
            },
            Fault {
                at: 0,
                dur: 10 * SEC,
                kind: FaultKind::Links {
                    pairs: vec![(2, 1)],
                    how: LinkFault::Flap {
                        cut: Cut::Refuse,
                        period: 100 * MS,
                    },
                },
            },
        ];
        assert_eq!(link(&faults, 1, 0, 1500 * MS), Link::Blackhole);
        assert_eq!(link(&faults, 0, 0, 1500 * MS), Link::Pass);
        assert_eq!(link(&faults, 1, 0, 2 * SEC), Link::Pass);
        assert_eq!(link(&faults, 2, 1, 50 * MS), Link::Refuse);
        assert_eq!(link(&faults, 2, 1, 150 * MS), Link::Pass);
        assert!(!clear_during(&faults, 1, 0, 0, SEC));
        assert!(clear_during(&faults, 1, 0, 2 * SEC, 3 * SEC));
    }
}
