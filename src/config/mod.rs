//! Configuration: placeholder until the config work lands.
