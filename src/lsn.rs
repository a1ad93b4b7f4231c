//! `Lsn`: a PostgreSQL WAL position. Owns parsing of the `X/Y` text form, ordering, display and
//! the JSON form (a string, as PostgreSQL prints it and as the state file carries it).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A WAL position: `(high << 32) | low` of the `X/Y` text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid LSN {0:?}: expected two hexadecimal numbers separated by '/'")]
pub struct LsnError(pub String);

impl FromStr for Lsn {
    type Err = LsnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnError(s.chars().take(40).collect());
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_original() {
        assert_eq!("1/00000000".parse::<Lsn>(), Ok(Lsn(1 << 32)));
        assert_eq!("F/AAAAAAAA".parse::<Lsn>(), Ok(Lsn((0xF << 32) | 0xAAAA_AAAA)));
        assert_eq!("0/3000148".parse::<Lsn>(), Ok(Lsn(0x300_0148)));
        for bad in ["x", "x/y", "", "1/", "/1", "1/2/3", "100000000/0"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_as_postgres_does_and_orders_numerically() {
        assert_eq!(Lsn(0x4_0000_2488).to_string(), "4/2488");
        assert_eq!(
            "0/4002488".parse::<Lsn>().map(|l| l.to_string()),
            Ok("0/4002488".into())
        );
        assert!("2/0".parse::<Lsn>().ok() > "1/FFFFFFFF".parse::<Lsn>().ok());
    }
}
