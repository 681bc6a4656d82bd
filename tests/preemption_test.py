"""Tests for stopping on SIGTERM/SIGINT (chromagen_tf/training/preemption.py).

The end-to-end behaviour (a signalled job saves one step on every worker
and resumes) is tested in train_cli_test.py and fault_tolerance_test.py;
these check the two parts on their own.
"""

import os
import signal
import threading

import tensorflow as tf

from chromagen_tf.training import preemption


class StopRequestTest(tf.test.TestCase):
    def test_signals_become_a_flag_and_handlers_are_restored(self):
        # Handlers can be installed only in the main thread; elsewhere the
        # SIGTERM below would end the test process.
        self.assertIs(threading.current_thread(), threading.main_thread())
        previous = signal.getsignal(signal.SIGTERM)
        for signal_number, name in (
            (signal.SIGTERM, 'SIGTERM'),
            (signal.SIGINT, 'SIGINT'),
        ):
            with preemption.StopRequest() as stop_request:
                self.assertIsNone(stop_request.signal_name)
                os.kill(os.getpid(), signal_number)  # Still running after.
                self.assertEqual(stop_request.signal_name, name)
        self.assertIs(signal.getsignal(signal.SIGTERM), previous)


class StopAgreementTest(tf.test.TestCase):
    def test_agrees_to_stop_only_when_asked(self):
        strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
        agree_to_stop = preemption.stop_agreement(strategy)
        self.assertFalse(agree_to_stop(False))
        self.assertTrue(agree_to_stop(True))
        self.assertFalse(agree_to_stop(False))


if __name__ == '__main__':
    tf.test.main()
