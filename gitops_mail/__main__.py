from gitops_mail.cli import console_main

console_main()
