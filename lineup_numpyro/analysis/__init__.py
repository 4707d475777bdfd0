"""What is done with finished runs: validation, comparison, export, report."""
