//! Fault injection. (Stub: owned by the storage work.)
