//! The YAML configuration: schema, loading, validation.
