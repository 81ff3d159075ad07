import { Anchor } from '@mantine/core';
import { Link } from 'react-router-dom';
import { Empty, PageTitle } from '../components/common';

export function NotFoundPage() {
  return (
    <>
      <PageTitle title="Not found" />
      <Empty>
        Nothing here. <Anchor component={Link} to="/">Back to the dashboard</Anchor>
      </Empty>
    </>
  );
}
