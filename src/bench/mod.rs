//! Load generators and measurements behind `barrage bench`. Every figure is reported beside a
//! baseline measured in the same run, as a ratio; nothing here is a test assertion.

pub mod baseline;
pub mod cdn;
pub mod fanout;
pub mod uplink;
pub mod viewers;
