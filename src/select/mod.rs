//! Picking what humans should label next: the seed's strategies (pure functions over
//! what scoring stored), k-means outliers, and the round composer that mixes them.

pub mod clusters;
pub mod composer;
pub mod diversity;
pub mod shares;
pub mod shortlist;
pub mod similar;
pub mod strategies;

pub use composer::{compose, composition, Composition, Pick, Pool, Quota};
pub use shares::allocate;
pub use shortlist::Shortlist;
pub use strategies::Strategy;
