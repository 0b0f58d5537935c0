//! Mapping local paths to CDF fields: placeholder until the config work lands.
