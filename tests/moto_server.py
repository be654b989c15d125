"""moto's server with DynamoDB's atomicity: one DynamoDB request at a time.

DynamoDB applies each write (a conditional put or update, an ADD, a transaction) atomically:
two concurrent compare-and-swaps on one item never both succeed. moto's threaded server
checks a condition and then writes in separate Python steps, so two request threads can
both pass the same condition; the storage conformance suite's concurrent claims and counts
then fail at random under load. Serialising DynamoDB requests (SQS's long polls stay
concurrent) gives the tests the guarantee the code relies on in AWS.

Run as `moto_server`: python tests/moto_server.py -H 127.0.0.1 -p PORT
"""
import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_one_at_a_time = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialised_call_action(self):
    with _one_at_a_time:
        return _call_action(self)


DynamoHandler.call_action = _serialised_call_action

if __name__ == "__main__":
    sys.exit(main())
