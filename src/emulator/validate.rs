//! Field limits of the Files API. (Stub: owned by the API work.)
