"""Local fake OpenAI Batch API and Keboola Job Queue servers (tests, demos, benchmarks)."""
