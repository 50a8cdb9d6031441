//! Store maintenance that needs both the objects and the provenance graph, so it sits above
//! both: [`verify`] (every object re-hashed and checked against the records) and [`gc`] (what
//! nothing live needs, and deleting it under the store's exclusive lock). The layering inside
//! the engine is: `store` (objects, work directories, locks) at the bottom, `provenance` (the
//! database and manifests) on it, `maintenance` on both; `store` never opens the database.
pub mod gc;
pub mod verify;
