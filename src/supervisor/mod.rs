//! Runs a Plan. (Being written.)

use crate::error::Error;
use crate::plan::Plan;

pub fn run(_plan: Plan) -> Result<i32, Error> {
    Err(Error::Failed("not implemented".into()))
}

pub fn probe(_url: &str) -> Result<i32, Error> {
    Err(Error::Failed("not implemented".into()))
}
