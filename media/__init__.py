"""Media bridge (issue 3): aiortc rooms relaying audio/video between a call's parties;
connection states become the call workflow's join / abort signals."""
