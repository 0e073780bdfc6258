"""Writers that turn rnnfast models into other formats."""
