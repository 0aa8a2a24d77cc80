"""Task adapter training: labeled data (CoNLL, CoNLL-U, WikiANN/HF), label alignment, heads, loop."""
