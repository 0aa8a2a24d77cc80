"""The `madx` command line: the top layer, which wires every other one.

    main        the app, `madx presets`, and the entry point (one-line errors, exit codes)
    pipeline    run, add-language, train-language, train-task, evaluate, results, demo, prepare
    servers     server, serve, ui (Prefect and MLflow servers, scheduled deployments)
    adapterhub  import-adapterhub, export-adapterhub
    help        the examples every command's --help ends with

Commands import what they run only when they run, and validate a config before anything heavy
loads, so `madx --help` and a config error take well under two seconds.
"""
