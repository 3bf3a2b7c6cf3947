//! The eight reference architectures. Built by the llm issue; empty until then.
