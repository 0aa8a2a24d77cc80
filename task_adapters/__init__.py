"""Task adapter training: a task adapter and its token head, trained on tagged data from `tagging`."""
