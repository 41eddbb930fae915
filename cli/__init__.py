"""The command line, the top floor: one module per command group, each parsing its
options and calling one library function; our errors map to exit codes once, at the
group (llama_rag.commands). Heavy imports stay inside the commands."""
