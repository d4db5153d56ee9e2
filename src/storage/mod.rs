//! Raft log storage. [`MemStorage`] keeps everything in memory; what it
//! holds is what a simulated crash keeps (see [`crate::sim`]).

mod mem;

pub use mem::MemStorage;
