"""Built-in variant models: one-hot CNN, a logistic/ridge head on AntiBERTy embeddings, zero-shot AntiBERTy PLL."""
