from gitops_mail.cli.main import console_main

console_main()
