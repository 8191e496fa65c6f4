"""ChatOps from Slack (app mode): the buttons of an alert's message, clicked.

Slack POSTs each click to the interactivity endpoint (handlers/slack_interactivity.py, a Lambda Function
URL), which checks Slack's signature first (`signature.py`), parses the click (`interaction.py`), hands it to
the actions queue and answers within Slack's 3 seconds. The actions worker (handlers/slack_actions.py) then
does what the button says (`actions.py`): acknowledge, silence, approve or reject a planned remediation.
"""
