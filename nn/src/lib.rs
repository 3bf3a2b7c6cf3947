//! Building blocks of open LLMs. Built by the nn issue; empty until then.
