"""What saldata shows a person about an output: ``saldata info`` and the HTML report."""
