//! The choice flags of the `llm` command as value enums: clap lists the choices in `--help` and
//! rejects anything else with one line naming the flag. The subcommands take the names, which
//! the library's own functions check again for callers that are not the command line.

/// `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    Cpu,
    /// The first GPU adapter that meets the kernels' requirements (LLM_GPU_ADAPTER picks one).
    Gpu,
}

/// `--optimizer` of `llm train`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerChoice {
    Adamw,
    Muon,
}

/// `--family` of `llm pretrain`: whose wiring the tiny model is built in, one of the registry's
/// architectures with a tiny recipe (so a new one is offered with no change here).
pub fn family_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::models::registry::tiny_families().map(|a| a.id()))
}

impl DeviceChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Gpu => "gpu",
        }
    }
}

impl OptimizerChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            OptimizerChoice::Adamw => "adamw",
            OptimizerChoice::Muon => "muon",
        }
    }
}
