import { useState } from 'react';
import { Alert, Button, Center, Paper, PasswordInput, Stack, Text, Title } from '@mantine/core';
import { setToken, type AuthReason } from '../api/auth';

/** Asks for the API token (printed once by `tradelab init`); stored in localStorage. */
export function TokenPrompt({ reason }: { reason: AuthReason }) {
  const [value, setValue] = useState('');
  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="md" p="xl" w={440} data-testid="token-prompt">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (value.trim()) setToken(value);
          }}
        >
          <Stack>
            <Title order={3}>tradelab · API token</Title>
            {reason === 'rejected' && (
              <Alert color="red" data-testid="token-rejected">
                The server rejected the token (401): it is missing, unknown, expired or revoked. Enter a valid one.
              </Alert>
            )}
            <Text size="sm" c="dimmed">
              Paste an admin token (from <code>tradelab init</code> or <code>tradelab token create</code>). It is kept
              in this browser&apos;s localStorage.
            </Text>
            <PasswordInput
              label="Token"
              value={value}
              onChange={(e) => setValue(e.currentTarget.value)}
              data-testid="token-input"
              autoFocus
            />
            <Button type="submit" disabled={!value.trim()} data-testid="token-submit">
              Continue
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
